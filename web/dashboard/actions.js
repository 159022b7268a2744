// The table of actions: newest first, filtered, paged with cursors ("Load
// more"), and live. Status events update their rows in place; an action the
// table does not show yet appears in its place (newest first) when it passes
// the filters. Each row with something to cancel has a "Cancel" button, which
// asks for confirmation in a dialog.

import { request } from './api.js';
import { CANCELABLE, STATUSES, el, indicatorOf, localInputToIso, statusBadge, time } from './format.js';

const PAGE_SIZE = 25;

const ROW_FIELDS = `id name status parameters { name value } vendorInformation { provider }
  user appId createdDateTime lastActionDateTime cancelRequestedDateTime errorInfo { message }`;

const LIST = `query DashboardActions($filter: ActionFilter, $after: String) {
  actions(filter: $filter, first: ${PAGE_SIZE}, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { ${ROW_FIELDS} }
  }
}`;

const FEED = `subscription DashboardRows($filter: ActionFilter, $after: String) {
  actionStatusChanged(filter: $filter, after: $after) { cursor action { ${ROW_FIELDS} } }
}`;

const CANCEL = `mutation DashboardCancel($id: ID!) { cancelAction(id: $id) { ${ROW_FIELDS} } }`;

/** What each status means for a cancel, said in the confirmation. */
const CANCEL_EFFECT = {
  NOT_STARTED: 'It has not started, so it is canceled at once.',
  RUNNING: 'It is running: the attempt is stopped and whatever it applied is reverted.',
  COMPLETED: 'It is in effect: the provider lifts it (a block is removed).',
};

const timeOf = (iso) => Date.parse(iso);

/** The filters as the form and the address bar hold them. */
export function readFilters(form) {
  const data = new FormData(form);
  return {
    statuses: data.getAll('status'),
    name: data.get('name') || '',
    indicator: (data.get('indicator') || '').trim(),
    createdAfter: localInputToIso(data.get('createdAfter')),
    createdBefore: localInputToIso(data.get('createdBefore')),
  };
}

/**
 * Starts the table. `ui` holds the elements; `catalog` is `actionCatalog`;
 * `live` the connection; `onSelect(id)` opens the detail panel;
 * `canWrite` says whether to offer "Cancel".
 */
export function startActions({ ui, catalog, live, onSelect, canWrite, onFiltersChanged }) {
  // The indicator parameters the free-text search looks in.
  const indicatorNames = [...new Set(catalog.map((a) => a.parameters.find((p) => p.required)?.name).filter(Boolean))];

  let filters = readFilters(ui.filters);
  let rows = new Map(); // id → { action, tr }
  let endCursor = null;
  let hasNextPage = false;
  let totalCount = 0;
  let generation = 0; // a reload makes older answers stale
  let stopFeed = () => {};
  let selectedId = null;

  function apiFilter(withStatus) {
    const filter = {};
    if (withStatus && filters.statuses.length) filter.status = filters.statuses;
    if (filters.name) filter.name = [filters.name];
    if (filters.indicator) {
      filter.or = indicatorNames.map((name) => ({ parameter: { name, value: filters.indicator } }));
    }
    if (filters.createdAfter) filter.createdAfter = filters.createdAfter;
    if (filters.createdBefore) filter.createdBefore = filters.createdBefore;
    return filter;
  }

  function passesStatus(action) {
    return filters.statuses.length === 0 || filters.statuses.includes(action.status);
  }

  function summary() {
    const shown = rows.size;
    ui.summary.textContent = `Showing ${shown} of ${Math.max(totalCount, shown)}`;
    ui.loadMore.hidden = !hasNextPage;
    if (shown === 0) {
      ui.rows.replaceChildren(el('tr', {}, el('td', { colspan: 7, className: 'empty' }, 'No actions match the filters.')));
    } else {
      const empty = ui.rows.querySelector('td.empty');
      if (empty) empty.parentElement.remove();
    }
  }

  function cells(action) {
    const notes = [];
    if (action.cancelRequestedDateTime && action.status !== 'CANCELED') notes.push('cancel requested');
    if (action.errorInfo) notes.push(action.errorInfo.message);
    const cancel =
      canWrite && CANCELABLE.has(action.status)
        ? el('button', { type: 'button', 'data-role': 'cancel', onclick: (e) => confirmCancel(action.id, e.currentTarget) }, 'Cancel')
        : null;
    return [
      el('td', {}, el('button', { type: 'button', className: 'link', 'data-role': 'open', onclick: () => onSelect(action.id) }, action.name)),
      el('td', { className: 'indicator' }, indicatorOf(action)),
      el('td', {}, statusBadge(action.status), notes.map((n) => el('span', { className: 'note' }, n))),
      el('td', { className: 'wide' }, action.vendorInformation.provider),
      el('td', { className: 'wide' }, action.user),
      el('td', {}, time(action.createdDateTime)),
      el('td', {}, cancel),
    ];
  }

  /** Draws `action` into its row, keeping keyboard focus where it was. */
  function draw(entry, action) {
    const focused = entry.tr.contains(document.activeElement) ? document.activeElement.dataset.role : null;
    entry.action = action;
    entry.tr.replaceChildren(...cells(action));
    entry.tr.dataset.status = action.status;
    if (focused) {
      const again = entry.tr.querySelector(`[data-role="${focused}"]`) || entry.tr.querySelector('[data-role="open"]');
      again.focus();
    }
  }

  function add(action, { fresh = false, atEnd = false } = {}) {
    const tr = el('tr', { 'data-id': action.id, className: action.id === selectedId ? 'selected' : null });
    const entry = { action, tr };
    rows.set(action.id, entry);
    draw(entry, action);
    if (atEnd) {
      ui.rows.append(tr);
    } else {
      // Newest first: before the first row created earlier.
      const created = timeOf(action.createdDateTime);
      const next = [...rows.values()].find((r) => r !== entry && r.tr.isConnected && timeOf(r.action.createdDateTime) < created);
      ui.rows.insertBefore(tr, next ? next.tr : null);
    }
    if (fresh) {
      tr.classList.add('new');
      tr.addEventListener('animationend', () => tr.classList.remove('new'), { once: true });
    }
  }

  /** Takes a newer view of an action: from an event, a cancel, an invoke. */
  function upsert(action, { fresh = false } = {}) {
    const entry = rows.get(action.id);
    if (entry) {
      if (timeOf(action.lastActionDateTime) >= timeOf(entry.action.lastActionDateTime)) draw(entry, action);
      return;
    }
    if (!passesStatus(action)) return;
    // Below the loaded page it will come with "Load more".
    const oldest = [...rows.values()].reduce((min, r) => Math.min(min, timeOf(r.action.createdDateTime)), Infinity);
    if (hasNextPage && timeOf(action.createdDateTime) < oldest) return;
    add(action, { fresh });
    totalCount += 1;
    summary();
  }

  async function loadPage() {
    const mine = generation;
    ui.loadMore.disabled = true;
    try {
      const data = await request(LIST, { filter: apiFilter(true), after: endCursor });
      if (mine !== generation) return;
      const page = data.actions;
      for (const action of page.nodes) {
        if (rows.has(action.id)) upsert(action);
        else add(action, { atEnd: true });
      }
      endCursor = page.pageInfo.endCursor;
      hasNextPage = page.pageInfo.hasNextPage;
      totalCount = page.totalCount;
      ui.error.textContent = '';
      summary();
    } catch (error) {
      if (mine !== generation) return;
      const filterField = error.field && error.field.startsWith('filter.or') ? ui.indicatorError : ui.error;
      filterField.textContent = error.message;
    } finally {
      ui.loadMore.disabled = false;
    }
  }

  /**
   * Starts over with the current filters: the feed first, then, once the
   * connection is up (so the subscription reached the gateway first), the
   * first page. A change between the two is then heard, not lost.
   */
  async function reload() {
    generation += 1;
    rows = new Map();
    endCursor = null;
    hasNextPage = false;
    totalCount = 0;
    ui.rows.replaceChildren();
    ui.summary.textContent = 'Loading…';
    ui.indicatorError.textContent = '';
    stopFeed();
    stopFeed = live.follow({
      query: FEED,
      variables: { filter: apiFilter(false) },
      onEvent: (event) => upsert(event.action, { fresh: true }),
      onGap: () => reload(),
    });
    const mine = generation;
    await live.ready();
    if (mine === generation) await loadPage();
  }

  // The cancel confirmation.
  let pending = null;
  function confirmCancel(id, opener) {
    const entry = rows.get(id);
    if (!entry) return;
    const action = entry.action;
    pending = { id, opener };
    ui.dialogText.textContent = `${action.name} on ${indicatorOf(action)} (${action.status}). ${CANCEL_EFFECT[action.status] || ''}`;
    ui.dialog.showModal();
    ui.dialogConfirm.focus();
  }
  async function cancelConfirmed() {
    const target = pending;
    pending = null;
    ui.dialog.close();
    if (!target) return;
    try {
      const data = await request(CANCEL, { id: target.id });
      upsert(data.cancelAction);
      ui.error.textContent = '';
    } catch (error) {
      ui.error.textContent = `Cancel failed: ${error.message} (${error.code})`;
    }
    const entry = rows.get(target.id);
    const focus = entry && (entry.tr.querySelector('[data-role="cancel"]') || entry.tr.querySelector('[data-role="open"]'));
    if (focus) focus.focus();
  }
  const keep = () => {
    pending = null;
    ui.dialog.close();
  };

  // Filters: applied on submit and on each change of a list; kept in the
  // address so a view can be bookmarked or shared.
  const apply = () => {
    filters = readFilters(ui.filters);
    onFiltersChanged(filters);
    reload();
  };
  const onSubmit = (event) => {
    event.preventDefault();
    apply();
  };
  const onChange = (event) => {
    if (event.target.name !== 'indicator') apply();
  };
  const onReset = () => setTimeout(apply);
  ui.filters.addEventListener('submit', onSubmit);
  ui.filters.addEventListener('change', onChange);
  ui.filters.addEventListener('reset', onReset);
  const onMore = () => loadPage();
  ui.loadMore.addEventListener('click', onMore);
  ui.dialogConfirm.addEventListener('click', cancelConfirmed);
  ui.dialogKeep.addEventListener('click', keep);

  reload();

  return {
    upsert,
    /** Shows only `statuses` (from the counts). */
    filterByStatus(statuses) {
      for (const box of ui.filters.querySelectorAll('input[name="status"]')) box.checked = statuses.includes(box.value);
      apply();
    },
    select(id) {
      selectedId = id;
      for (const [rowId, entry] of rows) entry.tr.classList.toggle('selected', rowId === id);
    },
    stop() {
      generation += 1;
      stopFeed();
      ui.filters.removeEventListener('submit', onSubmit);
      ui.filters.removeEventListener('change', onChange);
      ui.filters.removeEventListener('reset', onReset);
      ui.loadMore.removeEventListener('click', onMore);
      ui.dialogConfirm.removeEventListener('click', cancelConfirmed);
      ui.dialogKeep.removeEventListener('click', keep);
      if (ui.dialog.open) ui.dialog.close();
    },
  };
}

/** The status checkboxes of the filters form. */
export function statusChecks(container, selected) {
  container.replaceChildren(
    ...STATUSES.map((status) =>
      el('label', {}, el('input', { type: 'checkbox', name: 'status', value: status, checked: selected.includes(status) }), status),
    ),
  );
}

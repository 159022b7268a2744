// The detail panel of one action: every field, the state history and
// errorInfo, read with `action(id)` and read again when the action changes.

import { request } from './api.js';
import { el, statusBadge, time } from './format.js';

const DETAIL = `query DashboardAction($id: ID!) {
  action(id: $id) {
    id name status actionReason clientContext appId azureTenantId user
    parameters { name value }
    vendorInformation { provider providerVersion subProvider vendor }
    errorInfo { code message subcode }
    createdDateTime lastActionDateTime completedDateTime cancelRequestedDateTime
    states { status previousStatus appId user updatedDateTime detail }
  }
}`;

function row(term, value) {
  return [el('dt', {}, term), el('dd', {}, value === null || value === undefined || value === '' ? '—' : value)];
}

function render(action) {
  const vendor = action.vendorInformation;
  const fields = el(
    'dl',
    {},
    row('id', el('code', {}, action.id)),
    row('name', action.name),
    row('status', statusBadge(action.status)),
    action.parameters.map((p) => row(p.name, el('code', {}, p.value))),
    row('actionReason', action.actionReason),
    row('provider', vendor.provider),
    row('vendor', [vendor.vendor, vendor.providerVersion, vendor.subProvider].filter(Boolean).join(' · ')),
    row('clientContext', action.clientContext),
    row('user', action.user),
    row('appId', action.appId),
    row('azureTenantId', action.azureTenantId),
    row('createdDateTime', time(action.createdDateTime)),
    row('lastActionDateTime', time(action.lastActionDateTime)),
    row('completedDateTime', time(action.completedDateTime)),
    row('cancelRequestedDateTime', time(action.cancelRequestedDateTime)),
  );
  const error = action.errorInfo
    ? el(
        'div',
        { className: 'error-info' },
        el('h3', {}, 'errorInfo'),
        el('p', {}, action.errorInfo.message),
        el('p', { className: 'hint' }, `code ${action.errorInfo.code}`, action.errorInfo.subcode !== null ? `, subcode ${action.errorInfo.subcode}` : ''),
      )
    : null;
  const states = el(
    'table',
    {},
    el('caption', { className: 'visually-hidden' }, 'State history, oldest first'),
    el('thead', {}, el('tr', {}, ['From', 'To', 'When', 'By', 'Detail'].map((h) => el('th', { scope: 'col' }, h)))),
    el(
      'tbody',
      {},
      action.states.map((s) =>
        el(
          'tr',
          {},
          el('td', {}, s.previousStatus ? statusBadge(s.previousStatus) : '—'),
          el('td', {}, statusBadge(s.status)),
          el('td', {}, time(s.updatedDateTime)),
          el('td', {}, `${s.user} (${s.appId})`),
          el('td', {}, s.detail || ''),
        ),
      ),
    ),
  );
  return [fields, error, el('h3', {}, 'State history'), el('div', { className: 'table-wrap' }, states)];
}

/** The panel in `section`; `onClose()` runs when it is closed. */
export function createDetail(section, { onShow, onClose }) {
  const body = section.querySelector('#detail-body');
  const title = section.querySelector('#detail-title');
  const close = section.querySelector('#detail-close');
  let shownId = null;
  let generation = 0;

  async function load(id, focus) {
    const mine = ++generation;
    try {
      const data = await request(DETAIL, { id });
      if (mine !== generation || shownId !== id) return;
      if (data.action === null) {
        body.replaceChildren(el('p', {}, 'This action does not exist in your tenant.'));
      } else {
        title.textContent = `Details: ${data.action.name}`;
        body.replaceChildren(...render(data.action).filter(Boolean));
      }
    } catch (error) {
      if (mine === generation) body.replaceChildren(el('p', { className: 'field-error' }, error.message));
    }
    if (focus) title.focus();
  }

  const hide = () => {
    shownId = null;
    section.hidden = true;
    onClose();
  };
  close.addEventListener('click', hide);
  const onKey = (event) => {
    if (event.key === 'Escape' && shownId !== null && !document.querySelector('dialog[open]')) hide();
  };
  document.addEventListener('keydown', onKey);

  return {
    show(id) {
      shownId = id;
      section.hidden = false;
      onShow(id);
      body.replaceChildren(el('p', { className: 'hint' }, 'Loading…'));
      load(id, true);
    },
    /** An action changed: read it again if it is the one shown. */
    changed(action) {
      if (action.id === shownId) load(action.id, false);
    },
    hide,
    stop() {
      generation += 1;
      close.removeEventListener('click', hide);
      document.removeEventListener('keydown', onKey);
      section.hidden = true;
      shownId = null;
    },
  };
}

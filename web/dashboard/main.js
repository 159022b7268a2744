// The dashboard: reads the gateway's settings, signs in (the development
// token when the gateway has one, else a pasted bearer token), then starts
// the counts, the table, the invoke form and the detail panel over one live
// connection. When the session ends (sign-out, expiry, a refused token) all
// of it stops and the sign-in comes back.

import { configure, request } from './api.js';
import { startActions, statusChecks } from './actions.js';
import { startCounts } from './counts.js';
import { createDetail } from './detail.js';
import { STATUSES, el } from './format.js';
import { startInvoke } from './invoke.js';
import { Live } from './live.js';
import { session } from './session.js';

const SETTINGS_PATH = '/ui/settings';
const CATALOG = 'query DashboardCatalog { actionCatalog { name description providers parameters { name required description } } }';

const $ = (id) => document.getElementById(id);

async function readSettings() {
  const response = await fetch(SETTINGS_PATH, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`${SETTINGS_PATH} answered HTTP ${response.status}`);
  return response.json();
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  down: 'Reconnecting…',
  forbidden: 'Live updates refused: the token lacks the read role',
};

/** Filters in the address bar: ?status=A,B&name=&indicator=&createdAfter=&createdBefore= */
function filtersFromAddress() {
  const query = new URLSearchParams(window.location.search);
  return {
    statuses: (query.get('status') || '').split(',').filter((s) => STATUSES.includes(s)),
    name: query.get('name') || '',
    indicator: query.get('indicator') || '',
    createdAfter: query.get('createdAfter') || '',
    createdBefore: query.get('createdBefore') || '',
  };
}

function filtersToAddress(filters) {
  const query = new URLSearchParams();
  if (filters.statuses.length) query.set('status', filters.statuses.join(','));
  for (const key of ['name', 'indicator', 'createdAfter', 'createdBefore']) if (filters[key]) query.set(key, filters[key]);
  const search = query.toString();
  history.replaceState(null, '', search ? `?${search}` : window.location.pathname);
}

/** ISO → the value a `datetime-local` input takes, in local time. */
function isoToLocalInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

/** Starts everything for the signed-in session; returns how to stop it. */
async function startDashboard(settings) {
  $('who').textContent = session.describe();
  $('sign-out').hidden = false;
  $('sign-in').hidden = true;
  $('dashboard').hidden = false;
  notice('');

  const connection = $('connection');
  const live = new Live(settings, (state) => {
    connection.textContent = CONNECTION_TEXT[state] || '';
    connection.className = `connection ${state === 'live' ? 'live' : 'down'}`;
  });
  const parts = [];
  const stop = () => {
    for (const part of parts) part.stop();
    live.close();
    connection.textContent = '';
  };

  let catalog;
  try {
    catalog = (await request(CATALOG)).actionCatalog;
  } catch (error) {
    stop();
    if (error.code !== 'UNAUTHENTICATED') notice(`The dashboard could not start: ${error.message}`);
    return () => {};
  }
  if (session.token() === null) {
    stop();
    return () => {};
  }

  // The filters form, from the address.
  const initial = filtersFromAddress();
  statusChecks($('filter-statuses'), initial.statuses);
  $('filter-name').replaceChildren(el('option', { value: '' }, 'Any'), ...catalog.map((a) => el('option', { value: a.name }, a.name)));
  $('filter-name').value = initial.name;
  $('filter-indicator').value = initial.indicator;
  $('filter-created-after').value = initial.createdAfter ? isoToLocalInput(initial.createdAfter) : '';
  $('filter-created-before').value = initial.createdBefore ? isoToLocalInput(initial.createdBefore) : '';

  const canWrite = session.canWrite();
  const columns = document.querySelector('.columns');
  const detail = createDetail($('detail'), {
    onShow: (id) => {
      columns.classList.add('with-detail');
      actions.select(id);
    },
    onClose: () => {
      columns.classList.remove('with-detail');
      actions.select(null);
    },
  });
  const counts = startCounts($('counts-list'), live, (status) => actions.filterByStatus([status]), (error) => notice(`Counts: ${error.message}`));
  const actions = startActions({
    ui: {
      filters: $('filters'),
      rows: $('actions-rows'),
      summary: $('actions-summary'),
      loadMore: $('load-more'),
      error: $('actions-error'),
      indicatorError: $('filter-indicator-error'),
      dialog: $('cancel-dialog'),
      dialogText: $('cancel-dialog-text'),
      dialogConfirm: $('cancel-confirm'),
      dialogKeep: $('cancel-keep'),
    },
    catalog,
    live,
    canWrite,
    onSelect: (id) => detail.show(id),
    onFiltersChanged: (filters) => {
      filtersToAddress(filters);
      counts.showSelected(filters.statuses);
    },
  });
  counts.showSelected(initial.statuses);
  // The detail panel follows the table's events.
  const stopDetailFeed = live.follow({
    query: `subscription DashboardDetail($after: String) { actionStatusChanged(after: $after) { cursor action { id } } }`,
    onEvent: (event) => detail.changed(event.action),
  });
  const invoke = startInvoke({
    ui: {
      form: $('invoke-form'),
      action: $('invoke-action'),
      actionHint: $('invoke-action-hint'),
      actionError: $('invoke-action-error'),
      parameters: $('invoke-parameters'),
      provider: $('invoke-provider'),
      providerError: $('invoke-provider-error'),
      reason: $('invoke-reason'),
      reasonError: $('invoke-reason-error'),
      clientContext: $('invoke-client-context'),
      clientContextError: $('invoke-client-context-error'),
      formError: $('invoke-error'),
      submit: $('invoke-form').querySelector('button[type="submit"]'),
      result: $('invoke-result'),
      readOnly: $('invoke-read-only'),
    },
    catalog,
    canWrite,
    onInvoked: (action) => actions.upsert(action, { fresh: true }),
  });
  parts.push(counts, actions, detail, invoke, { stop: stopDetailFeed });
  return stop;
}

/** Shows the sign-in, pre-filled with a fresh development token when there is one. */
async function showSignIn(reason) {
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-reason').textContent = reason || '';
  let devToken = null;
  try {
    devToken = (await readSettings()).devToken;
  } catch {
    // The sign-in works without it.
  }
  $('sign-in-token').value = devToken || '';
  $('sign-in-token').focus();
}

async function main() {
  let settings;
  try {
    settings = await readSettings();
  } catch (error) {
    notice(`The dashboard could not read its settings: ${error.message}`);
    return;
  }
  configure(settings);

  let stop = () => {};
  session.onEnd((reason) => {
    stop();
    stop = () => {};
    showSignIn(reason);
  });
  $('sign-out').addEventListener('click', () => session.signOut());
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const problem = session.signIn($('sign-in-token').value);
    $('sign-in-reason').textContent = problem || '';
    if (problem === null) stop = await startDashboard(settings);
  });

  if (session.resume(settings.devToken)) stop = await startDashboard(settings);
  else showSignIn('');
}

main();

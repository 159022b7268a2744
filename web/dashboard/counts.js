// Counts by status, for the whole tenant, kept live. This module alone knows
// where the numbers come from: `actionCounts`, asked again (coalesced: one
// request in flight, at most one more queued) whenever a status event
// arrives. A push of the counts themselves would replace only `startCounts`'s
// feed.

import { request } from './api.js';
import { STATUSES, el } from './format.js';

/** Least time between two requests for the counts. */
const MIN_INTERVAL_MS = 250;

const COUNTS = 'query DashboardCounts { actionCounts { status count } }';
const ANY_EVENT = `subscription DashboardCountsTrigger($after: String) {
  actionStatusChanged(after: $after) { cursor }
}`;

/**
 * Shows the counts in `list` and keeps them live over `live`. Clicking a
 * status calls `onPick(status)`. Returns `{ stop, showSelected }`.
 */
export function startCounts(list, live, onPick, onError) {
  const buttons = new Map();
  list.replaceChildren(
    ...STATUSES.map((status) => {
      const number = el('span', { className: 'number' }, '…');
      const button = el(
        'button',
        {
          type: 'button',
          className: `status-${status}`,
          'aria-pressed': 'false',
          title: `Show only ${status} actions`,
          onclick: () => onPick(status),
        },
        el('span', { className: 'label' }, status),
        ' ',
        number,
      );
      buttons.set(status, { button, number });
      return el('li', {}, button);
    }),
  );

  // Coalescing: while a request is in flight (or resting after one), events
  // only mark the counts stale; one more request follows, so a burst of
  // events costs at most one request per MIN_INTERVAL_MS.
  let busy = false;
  let stale = false;
  let stopped = false;
  const run = async () => {
    busy = true;
    stale = false;
    try {
      const data = await request(COUNTS);
      if (stopped) return;
      for (const { status, count } of data.actionCounts) {
        const entry = buttons.get(status);
        if (entry) entry.number.textContent = String(count);
      }
    } catch (error) {
      if (!stopped) onError(error);
    } finally {
      if (stale && !stopped) setTimeout(run, MIN_INTERVAL_MS);
      else busy = false;
    }
  };
  const refresh = () => {
    if (busy) stale = true;
    else run();
  };

  const stopFeed = live.follow({ query: ANY_EVENT, onEvent: refresh, onGap: refresh });
  run();

  return {
    stop() {
      stopped = true;
      stopFeed();
    },
    /** Marks the statuses the table is filtered by. */
    showSelected(statuses) {
      for (const [status, { button }] of buttons) {
        button.setAttribute('aria-pressed', String(statuses.includes(status)));
      }
    },
  };
}

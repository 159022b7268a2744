// The live connection: one graphql-ws client (graphql-transport-ws at
// /graphql/ws, the token in connection_init) and feeds of
// `actionStatusChanged` on it. A feed remembers the cursor of the last event
// it received and, after a dropped connection, subscribes again with
// `after: <cursor>`: the gateway replays what happened meanwhile, so nothing
// is missed. A feed with no cursor yet reports a gap instead, and its owner
// reloads what it shows.

import { session } from './session.js';

/** How long a page read waits for the connection before going ahead without it. */
const READY_PATIENCE_MS = 5000;

/** Waits between reconnection attempts, then the last one repeats. */
const BACKOFF_MS = [500, 1000, 2000, 5000, 10000, 20000];

function websocketUrl(path) {
  const url = new URL(path, window.location.origin);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

function codeOf(error) {
  if (Array.isArray(error)) {
    const first = error[0];
    return (first && first.extensions && first.extensions.code) || 'ERROR';
  }
  if (error && typeof error.code === 'number') return error.code; // a CloseEvent
  return 'NETWORK';
}

export class Live {
  #client;
  #feeds = new Set();
  #onState;
  #connected = false;
  #waiting = [];

  /** `onState('live' | 'down' | 'connecting')` follows the connection. */
  constructor(settings, onState) {
    this.#onState = onState;
    const connected = (state) => {
      this.#connected = state;
      if (state) for (const resolve of this.#waiting.splice(0)) resolve();
    };
    this.#client = globalThis.graphqlWs.createClient({
      url: websocketUrl(settings.websocketPath),
      // Feeds reconnect themselves, so they can resume from their cursors.
      retryAttempts: 0,
      connectionParams: () => ({ Authorization: `Bearer ${session.token()}` }),
      on: {
        connecting: () => onState('connecting'),
        connected: () => {
          connected(true);
          onState('live');
        },
        closed: (event) => {
          connected(false);
          onState('down');
          if (event && event.code === 4401) session.refused('The gateway refused the token; sign in again.');
        },
      },
    });
  }

  /**
   * Follows `actionStatusChanged` with `query` (which takes `$after`) and
   * `variables`. `onEvent(event)` gets each event once; `onGap()` is called
   * when events may have been missed (a reconnection before any event, or a
   * cursor the gateway no longer knows). Returns a function that stops it.
   */
  follow({ query, variables = {}, onEvent, onGap = () => {} }) {
    let cursor = null;
    let attempt = 0;
    let dispose = null;
    let timer = null;
    let stopped = false;

    const subscribe = () => {
      dispose = this.#client.subscribe(
        { query, variables: { ...variables, after: cursor } },
        {
          next: (result) => {
            if (result.errors) return;
            attempt = 0;
            const event = result.data.actionStatusChanged;
            cursor = event.cursor;
            onEvent(event);
          },
          error: (error) => retry(codeOf(error)),
          complete: () => retry('COMPLETE'),
        },
      );
    };

    const retry = (code) => {
      if (stopped || session.token() === null) return;
      if (code === 4401 || code === 'UNAUTHENTICATED') {
        session.refused('The gateway refused the token; sign in again.');
        return;
      }
      if (code === 4403 || code === 'FORBIDDEN') {
        this.#onState('forbidden');
        return;
      }
      if (code === 'BAD_USER_INPUT') cursor = null; // the cursor is unknown here
      const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      timer = setTimeout(() => {
        if (stopped) return;
        if (cursor === null) onGap();
        // The gap may have started the owner over, stopping this feed.
        if (!stopped) subscribe();
      }, delay * (0.75 + Math.random() / 2));
    };

    subscribe();
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
      if (dispose) dispose();
      this.#feeds.delete(stop);
    };
    this.#feeds.add(stop);
    return stop;
  }

  /**
   * Resolves once the connection is up: a feed started before it has then
   * sent its subscription, so a page read afterwards cannot fall before it.
   * Resolves anyway after `patienceMs`: without live updates the dashboard
   * still shows what HTTP can.
   */
  ready(patienceMs = READY_PATIENCE_MS) {
    if (this.#connected) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      setTimeout(resolve, patienceMs);
    });
  }

  /** Ends every feed and the connection. */
  close() {
    for (const stop of [...this.#feeds]) stop();
    this.#client.dispose();
  }
}

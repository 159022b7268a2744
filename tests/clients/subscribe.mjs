// End-to-end check of `actionStatusChanged` over GraphQL-over-WebSocket
// (the `graphql-transport-ws` protocol, as the `graphql-ws` library speaks it),
// including resuming with `after:` a cursor.
//
// Spawned by a Rust integration test as `node tests/clients/subscribe.mjs`
// with the working directory at the repository root and:
//   ACTIONGATE_URL    http base URL of a running gateway, e.g. http://127.0.0.1:43123
//   ACTIONGATE_TOKEN  a bearer JWT with read and write rights
//
// On success prints `ok: <n> events` and exits 0; on any deviation prints
// what went wrong to stderr and exits 1. The whole run is bounded by 60 s.
//
// Steps:
//   a) subscribe live (after the connection is acknowledged, plus 300 ms)
//   b) invoke blockIp 203.0.113.50, expect its NOT_STARTED, RUNNING, COMPLETED
//   c) dispose that subscription and client
//   d) over HTTP invoke .51, .52, .53 and poll until all three are COMPLETED
//   e) new client, subscribe with `after:` the cursor of b's COMPLETED event,
//      expect exactly the 9 missed events (none of .50's)
//   f) still subscribed, invoke .54 and expect its 3 events live, then 500 ms
//      of silence
//   g) a subscription with `after: "not-a-cursor"` fails with BAD_USER_INPUT

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const OVERALL_TIMEOUT_MS = 60_000;
const EVENT_TIMEOUT_MS = 20_000;
const HTTP_TIMEOUT_MS = 10_000;
const SETTLE_MS = 300;
const QUIET_MS = 500;
const POLL_MS = 100;

// The lifecycle of every action: status and the previousStatus it must carry.
const LIFECYCLE = [
  { status: "NOT_STARTED", previousStatus: null },
  { status: "RUNNING", previousStatus: "NOT_STARTED" },
  { status: "COMPLETED", previousStatus: "RUNNING" },
];
const STATUSES = new Set(["NOT_STARTED", "RUNNING", "COMPLETED", "FAILED", "CANCELED"]);

const INVOKE = `mutation($ip: String!) {
  invokeAction(input: {name: "blockIp", parameters: [{name: "ip", value: $ip}]}) { id status }
}`;
const STATUS_QUERY = `query($id: ID!) { action(id: $id) { status } }`;
const LIVE_SUBSCRIPTION = `subscription {
  actionStatusChanged { cursor status previousStatus action { id name } }
}`;
const RESUME_SUBSCRIPTION = `subscription($after: String) {
  actionStatusChanged(after: $after) { cursor status previousStatus action { id name } }
}`;

// ---------------------------------------------------------------------------
// Failing loudly

let step = "setup";
/** Every event received, for the report when something goes wrong. */
const log = [];

function fail(message) {
  process.stderr.write(`subscribe.mjs: FAILED in step ${step}: ${message}\n`);
  if (log.length) {
    process.stderr.write(`events received so far (${log.length}):\n`);
    for (const line of log) process.stderr.write(`  ${line}\n`);
  }
  process.exit(1);
}

const watchdog = setTimeout(
  () => fail(`the scenario did not finish within ${OVERALL_TIMEOUT_MS / 1000} s`),
  OVERALL_TIMEOUT_MS,
);
process.on("unhandledRejection", (err) => fail(`unhandled rejection: ${describe(err)}`));
process.on("uncaughtException", (err) => fail(`uncaught exception: ${describe(err)}`));

function describe(value) {
  if (value instanceof Error) return value.stack ?? `${value.name}: ${value.message}`;
  // A WebSocket ErrorEvent (from ws) wraps the underlying error.
  if (value?.error instanceof Error) return describe(value.error);
  if (value && typeof value === "object" && typeof value.message === "string" && !("extensions" in value)) {
    return value.message;
  }
  // A CloseEvent (from ws or graphql-ws) carries code and reason.
  if (value && typeof value === "object" && "code" in value && "reason" in value) {
    return `socket closed with code ${value.code} (${value.reason || "no reason"})`;
  }
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Environment

const baseUrl = (process.env.ACTIONGATE_URL ?? "").replace(/\/+$/, "");
const token = process.env.ACTIONGATE_TOKEN ?? "";
if (!/^https?:\/\//.test(baseUrl)) fail(`ACTIONGATE_URL must be an http(s) URL, got ${JSON.stringify(baseUrl)}`);
if (!token) fail("ACTIONGATE_TOKEN is not set");
const httpUrl = `${baseUrl}/graphql`;
const wsUrl = `${baseUrl.replace(/^http/, "ws")}/graphql/ws`;

// ---------------------------------------------------------------------------
// HTTP

/** POSTs one operation; fails on transport errors, non-2xx or GraphQL errors. */
async function http(query, variables) {
  let response;
  try {
    response = await fetch(httpUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
  } catch (err) {
    fail(`POST ${httpUrl} failed: ${describe(err)}`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`POST ${httpUrl} answered ${response.status} with a non-JSON body: ${text.slice(0, 500)}`);
  }
  if (!response.ok || body.errors?.length || !body.data) {
    fail(`POST ${httpUrl} answered ${response.status}: ${text.slice(0, 2000)} (variables ${JSON.stringify(variables)})`);
  }
  return body.data;
}

async function invokeBlockIp(ip) {
  const data = await http(INVOKE, { ip });
  const action = data.invokeAction;
  if (!action || typeof action.id !== "string" || !action.id) {
    fail(`invokeAction for ${ip} returned no action id: ${JSON.stringify(data)}`);
  }
  if (!STATUSES.has(action.status)) {
    fail(`invokeAction for ${ip} returned an unknown status: ${JSON.stringify(action)}`);
  }
  return action.id;
}

/** Polls `action(id)` until every id is COMPLETED. */
async function waitCompleted(ids) {
  const pending = new Set(ids);
  while (pending.size) {
    for (const id of [...pending]) {
      const data = await http(STATUS_QUERY, { id });
      const status = data.action?.status;
      if (status === "COMPLETED") pending.delete(id);
      else if (!STATUSES.has(status) || status === "FAILED" || status === "CANCELED") {
        fail(`action ${id} has status ${JSON.stringify(status)} while waiting for COMPLETED: ${JSON.stringify(data)}`);
      }
    }
    if (pending.size) await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------
// WebSocket

/**
 * A client that connects at once and never retries (a silent reconnect would
 * hide lost events), failing on any close it did not ask for. Resolves once
 * the server acknowledged `connection_init`.
 */
async function connect(label) {
  let closing = false;
  let acknowledged;
  const connected = new Promise((resolve) => (acknowledged = resolve));
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: (err) => {
      if (!closing) fail(`${label}: connection failed: ${describe(err)}`);
    },
    on: {
      connected: () => acknowledged(),
      closed: (event) => {
        if (!closing) fail(`${label}: ${describe(event)}`);
      },
      error: (err) => {
        if (!closing) fail(`${label}: socket error: ${describe(err)}`);
      },
    },
  });
  await connected;
  return {
    client,
    async close() {
      closing = true;
      await client.dispose();
    },
  };
}

/** One subscription, with its results queued for `take`. */
class Feed {
  constructor(client, label, query, variables) {
    this.label = label;
    this.queue = [];
    this.end = null; // { error } or { complete: true }
    this.wake = null;
    this.disposed = false;
    this.unsubscribe = client.subscribe(
      { query, variables },
      {
        next: (result) => this.push(() => this.queue.push(result)),
        error: (error) => this.push(() => (this.end ??= { error })),
        complete: () => this.push(() => (this.end ??= { complete: true })),
      },
    );
  }

  push(change) {
    change();
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** The next result, or the end (`{ error }` / `{ complete }`) once drained. */
  async take(timeoutMs, what) {
    while (!this.queue.length && !this.end) {
      let timer;
      const timedOut = await new Promise((resolve) => {
        this.wake = () => resolve(false);
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      clearTimeout(timer);
      if (timedOut) fail(`${this.label}: no ${what} within ${timeoutMs} ms`);
    }
    if (this.queue.length) return { result: this.queue.shift() };
    return this.end;
  }

  /** The next `actionStatusChanged` event; anything else is a failure. */
  async nextEvent(what) {
    const item = await this.take(EVENT_TIMEOUT_MS, what);
    if (!item.result) {
      fail(`${this.label}: subscription ended while waiting for ${what}: ${describe(item.error ?? "complete")}`);
    }
    const { result } = item;
    if (result.errors?.length) fail(`${this.label}: result with errors: ${JSON.stringify(result)}`);
    const event = result.data?.actionStatusChanged;
    if (!event) fail(`${this.label}: result without actionStatusChanged: ${JSON.stringify(result)}`);
    log.push(`${this.label}: ${JSON.stringify(event)}`);
    return event;
  }

  /** Fails if anything arrives within `ms`. */
  async expectQuiet(ms) {
    await sleep(ms);
    if (this.queue.length) fail(`${this.label}: unexpected result(s) after the last expected event: ${JSON.stringify(this.queue)}`);
    if (this.end) fail(`${this.label}: subscription ended unexpectedly: ${describe(this.end.error ?? "complete")}`);
  }

  dispose() {
    if (!this.disposed) {
      this.disposed = true;
      this.unsubscribe();
    }
  }
}

// ---------------------------------------------------------------------------
// Checking events

/** Every cursor seen in the whole run: none may repeat. */
const seenCursors = new Set();
let eventCount = 0;

/**
 * Receives exactly 3 events per id in `ids` (each action's NOT_STARTED,
 * RUNNING, COMPLETED in that order, interleaving between actions allowed)
 * and nothing for any other action. Returns the events in arrival order.
 * `names` maps ids to labels for messages; `forbidden` maps ids that must not
 * appear to the reason why.
 */
async function expectLifecycles(feed, ids, names, forbidden = new Map()) {
  const progress = new Map(ids.map((id) => [id, 0]));
  const total = ids.length * LIFECYCLE.length;
  const events = [];
  for (let i = 0; i < total; i++) {
    const event = await feed.nextEvent(`event ${i + 1} of ${total}`);
    const where = `${feed.label}: event ${i + 1} of ${total} ${JSON.stringify(event)}`;
    const id = event.action?.id;
    if (forbidden.has(id)) fail(`${where}: ${forbidden.get(id)}`);
    if (!progress.has(id)) fail(`${where}: is for an action other than ${ids.map((x) => names.get(x)).join(", ")}`);
    if (event.action.name !== "blockIp") fail(`${where}: action name is not blockIp`);
    if (typeof event.cursor !== "string" || !event.cursor) fail(`${where}: no cursor`);
    if (seenCursors.has(event.cursor)) fail(`${where}: cursor ${event.cursor} was already seen`);
    seenCursors.add(event.cursor);
    const index = progress.get(id);
    if (index >= LIFECYCLE.length) fail(`${where}: more than ${LIFECYCLE.length} events for ${names.get(id)}`);
    const expected = LIFECYCLE[index];
    if (event.status !== expected.status || event.previousStatus !== expected.previousStatus) {
      fail(
        `${where}: expected status ${expected.status} with previousStatus ${expected.previousStatus} ` +
          `as event ${index + 1} of ${names.get(id)}`,
      );
    }
    progress.set(id, index + 1);
    events.push(event);
    eventCount++;
  }
  return events;
}

// ---------------------------------------------------------------------------
// The scenario

async function main() {
  const names = new Map();

  // a) A live subscription, established before anything happens.
  step = "a (live subscription)";
  const first = await connect("client 1");
  const live = new Feed(first.client, "live", LIVE_SUBSCRIPTION);
  await sleep(SETTLE_MS);

  // b) Invoke and watch one action's lifecycle.
  step = "b (live events of 203.0.113.50)";
  const firstId = await invokeBlockIp("203.0.113.50");
  names.set(firstId, `203.0.113.50 (${firstId})`);
  const firstEvents = await expectLifecycles(live, [firstId], names);
  const resumeCursor = firstEvents[firstEvents.length - 1].cursor;

  // c) Leave.
  step = "c (dispose client 1)";
  await live.expectQuiet(0);
  live.dispose();
  await first.close();

  // d) Three actions while nobody is subscribed.
  step = "d (invoke .51-.53 over HTTP)";
  const missedIds = [];
  for (const ip of ["203.0.113.51", "203.0.113.52", "203.0.113.53"]) {
    const id = await invokeBlockIp(ip);
    names.set(id, `${ip} (${id})`);
    missedIds.push(id);
  }
  if (new Set([firstId, ...missedIds]).size !== 4) fail(`action ids repeat: ${[firstId, ...missedIds].join(", ")}`);
  await waitCompleted(missedIds);

  // e) Resume after the last event seen: exactly the 9 missed events.
  step = "e (resume with after)";
  const second = await connect("client 2");
  const resumed = new Feed(second.client, "resumed", RESUME_SUBSCRIPTION, { after: resumeCursor });
  const seam = new Map([[firstId, "is for the first action (203.0.113.50): a duplicate at the seam"]]);
  await expectLifecycles(resumed, missedIds, names, seam);

  // f) The same subscription goes on live.
  step = "f (live after replay)";
  const lastId = await invokeBlockIp("203.0.113.54");
  names.set(lastId, `203.0.113.54 (${lastId})`);
  seam.set(firstId, "is for the first action (203.0.113.50), already seen before resuming");
  for (const id of missedIds) seam.set(id, `is another event for ${names.get(id)}, whose 3 events were already received`);
  await expectLifecycles(resumed, [lastId], names, seam);
  await resumed.expectQuiet(QUIET_MS);
  resumed.dispose();

  // g) A malformed cursor is the client's error.
  step = "g (malformed cursor)";
  const bad = new Feed(second.client, "malformed cursor", RESUME_SUBSCRIPTION, { after: "not-a-cursor" });
  const outcome = await bad.take(EVENT_TIMEOUT_MS, "error for after: \"not-a-cursor\"");
  let errors;
  if (outcome.result) {
    errors = outcome.result.errors;
    if (!Array.isArray(errors) || !errors.length) {
      fail(`expected errors for after: "not-a-cursor", got a result: ${JSON.stringify(outcome.result)}`);
    }
  } else if (outcome.error !== undefined) {
    errors = outcome.error;
    if (!Array.isArray(errors) || !errors.length) {
      fail(`expected an array of GraphQL errors for after: "not-a-cursor", got: ${describe(errors)}`);
    }
  } else {
    fail(`the subscription with after: "not-a-cursor" completed without an error`);
  }
  const code = errors[0]?.extensions?.code;
  if (code !== "BAD_USER_INPUT") {
    fail(`expected extensions.code BAD_USER_INPUT for after: "not-a-cursor", got ${JSON.stringify(errors)}`);
  }
  bad.dispose();

  // h) Done.
  step = "h (dispose client 2)";
  await second.close();
  clearTimeout(watchdog);
  process.stdout.write(`ok: ${eventCount} events\n`);
  process.exit(0);
}

main().catch((err) => fail(describe(err)));

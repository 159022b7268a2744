// Drives GraphiQL and the dashboard in headless Chromium against a running
// gateway, the way an analyst would: controls are found by their accessible
// names. Run by `cargo test --test browser`, which starts the gateways and
// sets:
//
//   ACTIONGATE_URL          a gateway with the development key (pre-filled token)
//   ACTIONGATE_SIGNIN_URL   a gateway with a real key (nothing pre-filled)
//   ACTIONGATE_SIGNIN_TOKEN a valid token for it
//   ACTIONGATE_READER_TOKEN a valid token for it with the read role only
//   ACTIONGATE_FOREIGN_TOKEN a token signed with another key
//   ACTIONGATE_SCREENSHOTS  where to save the screenshots
//   CHROMIUM                the browser (default /usr/bin/chromium)
//
// Fails on any request to a host other than the gateway's and on any console
// error or uncaught exception in a page.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = need('ACTIONGATE_URL');
const signInBase = need('ACTIONGATE_SIGNIN_URL');
const signInToken = need('ACTIONGATE_SIGNIN_TOKEN');
const readerToken = need('ACTIONGATE_READER_TOKEN');
const foreignToken = need('ACTIONGATE_FOREIGN_TOKEN');
const screenshots = need('ACTIONGATE_SCREENSHOTS');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 60_000;

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function step(text) {
  console.log(`ok: ${text}`);
}

/** Polls `probe` until it returns a truthy value. */
async function until(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** GraphQL over HTTP from the test itself: what "another tab" would send. */
async function gql(url, token, query, variables = {}) {
  const response = await fetch(new URL('/graphql', url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const INVOKE = `mutation($name: String!, $parameter: String!, $value: String!, $reason: String) {
  invokeAction(input: { name: $name, actionReason: $reason, parameters: [{ name: $parameter, value: $value }] }) { id status }
}`;

// ---------------------------------------------------------------- browser

const profile = mkdtempSync(join(tmpdir(), 'actiongate-chromium-'));
mkdirSync(screenshots, { recursive: true });
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1440, height: 900 },
  colorScheme: 'light',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
context.setDefaultTimeout(TIMEOUT);

const allowedHosts = new Set([new URL(base).host, new URL(signInBase).host]);
const problems = [];
// While set, console errors matching it are expected (a refused token is
// reported by Chromium as a failed resource load).
let expectedConsoleError = null;
const expectedSeen = [];

function watch(page) {
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol) && !allowedHosts.has(url.host)) {
      problems.push(`request to another host: ${request.url()}`);
    }
  });
  page.on('websocket', (socket) => {
    const url = new URL(socket.url());
    if (!allowedHosts.has(url.host)) problems.push(`WebSocket to another host: ${socket.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (expectedConsoleError && expectedConsoleError.test(message.text())) {
      expectedSeen.push(message.text());
      return;
    }
    problems.push(`console error on ${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught exception on ${page.url()}: ${error.message}`));
}

function checkProblems(where) {
  if (problems.length > 0) throw new Error(`${where}:\n  ${problems.join('\n  ')}`);
}

let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  watch(page);
  const devToken = (await (await fetch(new URL('/ui/settings', base))).json()).devToken;
  if (!devToken) throw new Error('the development gateway hands out no token');

  // Some history for the table and the screenshots.
  const seeds = [];
  for (let i = 0; i < 26; i += 1) seeds.push(['blockIp', 'ip', `198.51.100.${i + 1}`]);
  seeds.push(
    ['allowDomain', 'domain', 'partner.example'],
    ['allowIp', 'ip', '192.0.2.10'],
    ['blockFile', 'fileHash', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['blockUrl', 'url', 'https://cdn.invoice-portal.example/payload.js'],
    ['blockDomain', 'domain', 'login-microsoft-secure.example'],
  );
  for (const [name, parameter, value] of seeds) {
    await gql(base, devToken, INVOKE, { name, parameter, value, reason: 'seen in a phishing campaign' });
  }

  // ------------------------------------------------------------ GraphiQL
  await page.goto(`${base}/`);
  await page.locator('.graphiql-container').waitFor();
  const headersText = (
    await page.locator('.graphiql-editor-tool .CodeMirror').evaluateAll((all) => all.map((e) => e.CodeMirror.getValue()))
  ).join('\n');
  if (!headersText.includes(`Bearer ${devToken.split('.')[0]}`)) {
    throw new Error(`GraphiQL's headers are not pre-filled with a development token: ${headersText}`);
  }
  step('GraphiQL loads from the gateway with the development token pre-filled');

  // GraphiQL takes an edit after a pause: wait for the tab to bear the
  // operation's name before running it.
  const setQuery = async (operation, text) => {
    await page.locator('.graphiql-query-editor .CodeMirror').evaluate((e, value) => e.CodeMirror.setValue(value), text);
    await until(`GraphiQL to take "${operation}"`, async () => (await page.locator('.graphiql-tab-active').innerText()).trim() === operation);
  };
  const response = () => page.locator('.graphiql-response .CodeMirror').evaluate((e) => e.CodeMirror.getValue());
  const run = () => page.getByRole('button', { name: /Execute query/ }).click();

  // A subscription streams while another client invokes.
  await setQuery('watch', `subscription watch {
  actionStatusChanged(filter: { name: ["blockIp"] }) {
    status previousStatus
    action { name parameters { name value } }
  }
}`);
  await run();
  // The subscription is live once its WebSocket carries it; invoke until an
  // event shows (the first invoke may land before the subscribe arrives).
  let streamed = false;
  for (let i = 0; i < 20 && !streamed; i += 1) {
    await gql(base, devToken, INVOKE, { name: 'blockIp', parameter: 'ip', value: `203.0.113.${200 + i}` });
    streamed = await until('a streamed event', async () => (await response()).includes('203.0.113.'), 3_000).catch(() => false);
  }
  if (!streamed) throw new Error('GraphiQL showed no event of actionStatusChanged');
  step('a subscription in GraphiQL streams actionStatusChanged over the WebSocket');
  await page.getByRole('button', { name: /Stop/ }).click();

  await setQuery('list', `query list {
  actions(first: 5, filter: { name: ["blockIp"] }) {
    totalCount
    nodes { name status parameters { value } vendorInformation { provider } }
  }
  actionCounts { status count }
}`);
  await run();
  await until('the query result', async () => (await response()).includes('"totalCount"'));
  if (!(await response()).includes('"actionCounts"')) throw new Error(`unexpected GraphiQL result: ${await response()}`);
  step('a query runs in GraphiQL');
  await page.screenshot({ path: join(screenshots, 'graphiql.png') });

  // A reload brings the token of that load, not one kept from before.
  const [settingsResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/ui/settings')),
    page.reload(),
  ]);
  const freshToken = (await settingsResponse.json()).devToken;
  await page.locator('.graphiql-container').waitFor();
  await until('the fresh token in the headers', async () =>
    (
      await page.locator('.graphiql-editor-tool .CodeMirror').evaluateAll((all) => all.map((e) => e.CodeMirror.getValue()))
    ).some((text) => text.includes(`Bearer ${freshToken}`)),
  );
  step('a reload of GraphiQL pre-fills the token minted for that load');
  checkProblems('GraphiQL');

  // ----------------------------------------------------------- dashboard
  await page.goto(`${base}/dashboard`);
  const counts = page.getByRole('region', { name: 'Counts by status' });
  const countOf = async (status) => {
    const text = await counts.getByRole('listitem').filter({ hasText: status }).innerText();
    const number = /(\d+)/.exec(text);
    return number ? Number(number[1]) : NaN;
  };
  await until('the counts', async () => !Number.isNaN(await countOf('COMPLETED')));
  const entries = await counts.getByRole('listitem').allInnerTexts();
  for (const status of ['NOT_STARTED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELED']) {
    if (!entries.some((text) => text.includes(status) && /\d/.test(text))) {
      throw new Error(`no count for ${status} in ${JSON.stringify(entries)}`);
    }
  }
  const table = page.getByRole('table').first();
  const rows = table.locator('tbody tr');
  await until('the first page of actions', async () => (await rows.count()) === 25);
  await page.getByRole('button', { name: 'Load more' }).click();
  await until('the second page', async () => (await rows.count()) > 25);
  step('the dashboard shows counts by status and pages with "Load more"');

  // Sockets carry the live feeds; keep a handle to drop them later.
  const sockets = [];
  await page.routeWebSocket(/\/graphql\/ws$/, (ws) => {
    const server = ws.connectToServer();
    const record = { ws, server, subscribes: [] };
    ws.onMessage((message) => {
      const parsed = JSON.parse(message);
      if (parsed.type === 'subscribe') record.subscribes.push(parsed.payload.variables || {});
      server.send(message);
    });
    server.onMessage((message) => ws.send(message));
    sockets.push(record);
  });
  await page.reload();
  await until('the live connection', async () => (await page.locator('#connection').innerText()).includes('Live'));
  // The counts are the tenant's: let every earlier action settle first, so
  // the change seen next is this test's own.
  const completedBefore = await until('the earlier actions to settle', async () => {
    const [waiting, running, n] = await Promise.all([countOf('NOT_STARTED'), countOf('RUNNING'), countOf('COMPLETED')]);
    return waiting === 0 && running === 0 && !Number.isNaN(n) ? { n } : null;
  });

  // The server's validation error shows next to the field it names.
  await page.getByLabel('Action', { exact: true }).selectOption('blockIp');
  await page.getByLabel('ip', { exact: true }).fill('300.1.2.3');
  await page.getByLabel('Reason', { exact: true }).fill('browser test');
  await page.getByRole('button', { name: 'Invoke', exact: true }).click();
  const ipField = page.locator('.field', { has: page.getByLabel('ip', { exact: true }) });
  await until('the error next to "ip"', async () => (await ipField.locator('.field-error').innerText()).trim().length > 0);
  if ((await page.getByLabel('ip', { exact: true }).getAttribute('aria-invalid')) !== 'true') {
    throw new Error('the ip field is not marked invalid');
  }
  step(`a bad IP is refused next to its field: "${(await ipField.locator('.field-error').innerText()).trim()}"`);

  const ip = '203.0.113.77';
  await page.getByLabel('ip', { exact: true }).fill(ip);
  const provider = page.getByLabel('Provider', { exact: true });
  if ((await provider.locator('option').count()) < 1) throw new Error('no provider to choose');
  await page.getByRole('button', { name: 'Invoke', exact: true }).click();
  const row = rows.filter({ hasText: ip });
  await until(`the row of ${ip} COMPLETED`, async () => (await row.count()) === 1 && (await row.innerText()).includes('COMPLETED'));
  await until('the COMPLETED count to grow', async () => (await countOf('COMPLETED')) === completedBefore.n + 1);
  step('blockIp invoked from the form reaches COMPLETED and the counts follow, without a reload');

  // A dropped connection resumes from the last cursor.
  const before = sockets.length;
  const socket = sockets[sockets.length - 1];
  socket.ws.close({ code: 1012, reason: 'network blip' });
  socket.server.close({ code: 1012, reason: 'network blip' });
  await until('a new connection', async () => sockets.length > before && sockets[sockets.length - 1].subscribes.length >= 3);
  const resumed = sockets[sockets.length - 1].subscribes.filter((v) => typeof v.after === 'string' && v.after.length > 0);
  if (resumed.length === 0) {
    throw new Error(`no feed resumed with after: ${JSON.stringify(sockets[sockets.length - 1].subscribes)}`);
  }
  await until('the live connection again', async () => (await page.locator('#connection').innerText()).includes('Live'));
  step(`after a dropped WebSocket the feeds subscribe again with after (${resumed.length} of them)`);

  // Details of the action.
  await row.getByRole('button', { name: 'blockIp' }).click();
  const detail = page.locator('#detail');
  await until('the detail panel', async () => (await detail.innerText()).includes('State history'));
  const detailText = await detail.innerText();
  for (const expected of [ip, 'browser test', 'NOT_STARTED', 'RUNNING', 'COMPLETED']) {
    if (!detailText.includes(expected)) throw new Error(`the detail panel lacks ${expected}:\n${detailText}`);
  }
  step('the detail panel shows the fields and the state history');
  await page.keyboard.press('Escape');
  await detail.waitFor({ state: 'hidden' });

  // Cancel from the row, confirmed in a dialog without a second "Cancel".
  const canceledBefore = await countOf('CANCELED');
  await row.getByRole('button', { name: 'Cancel', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  if ((await dialog.getByRole('button', { name: 'Cancel', exact: true }).count()) !== 0) {
    throw new Error('the confirmation has a button named "Cancel"');
  }
  await dialog.getByRole('button', { name: 'Confirm', exact: true }).click();
  await until(`the row of ${ip} CANCELED`, async () => (await row.innerText()).includes('CANCELED'));
  await until('the CANCELED count to grow', async () => (await countOf('CANCELED')) === canceledBefore + 1);
  await row.getByRole('button', { name: 'blockIp' }).click();
  await until('the detail to show the cancel', async () => {
    const text = await detail.innerText();
    return text.includes('CANCELED') && !/cancelRequestedDateTime\s*—/.test(text);
  });
  await page.getByRole('button', { name: 'Close details' }).click();
  step('Cancel on the row, confirmed, reaches CANCELED live');

  // The indicator search uses the parameter filter.
  await page.getByLabel('Indicator', { exact: true }).fill(ip);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await until('the filtered table', async () => (await rows.count()) === 1 && (await rows.first().innerText()).includes(ip));
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await until('the whole table', async () => (await rows.count()) === 25);
  step('the indicator filter narrows the table to the action');

  await detail.waitFor({ state: 'hidden' });
  await page.screenshot({ path: join(screenshots, 'dashboard.png') });
  await rows.filter({ hasText: 'login-microsoft-secure.example' }).getByRole('button', { name: 'blockDomain' }).click();
  await until('the detail panel', async () => (await detail.innerText()).includes('State history'));
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(screenshots, 'dashboard-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.keyboard.press('Escape');
  await detail.waitFor({ state: 'hidden' });

  // A narrow window: nothing wider than the window.
  await page.setViewportSize({ width: 400, height: 860 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`the page is ${overflow}px wider than a 400px window`);
  await page.screenshot({ path: join(screenshots, 'dashboard-narrow.png') });
  step('a 400px window shows the dashboard without sideways scrolling');
  checkProblems('dashboard');

  // ---------------------------------------------- sign-in with a real key
  const signIn = await context.newPage();
  watch(signIn);
  await signIn.goto(`${signInBase}/dashboard`);
  const tokenField = signIn.getByLabel('Bearer token');
  await tokenField.waitFor();
  if ((await tokenField.inputValue()) !== '') throw new Error('a token is pre-filled with a real key');
  expectedConsoleError = /status of 401/;
  await tokenField.fill(foreignToken);
  await signIn.getByRole('button', { name: 'Sign in', exact: true }).click();
  await until('the refusal', async () => (await signIn.locator('#sign-in-reason').innerText()).trim().length > 0);
  await tokenField.waitFor();
  expectedConsoleError = null;
  if (expectedSeen.length === 0) throw new Error('the refused token did not reach the gateway');
  step(`a token the gateway refuses brings the sign-in back: "${(await signIn.locator('#sign-in-reason').innerText()).trim()}"`);

  // A read-only token sees the dashboard but may not invoke or cancel.
  await tokenField.fill(readerToken);
  await signIn.getByRole('button', { name: 'Sign in', exact: true }).click();
  await signIn.getByRole('region', { name: 'Counts by status' }).getByRole('listitem').first().waitFor();
  if (!(await signIn.getByRole('button', { name: 'Invoke', exact: true }).isDisabled())) {
    throw new Error('a read-only token may press Invoke');
  }
  await signIn.getByRole('button', { name: 'Sign out' }).click();
  await tokenField.waitFor();
  step('a read-only token signs in without Invoke, and Sign out brings the sign-in back');

  await tokenField.fill(signInToken);
  await signIn.getByRole('button', { name: 'Sign in', exact: true }).click();
  await signIn.getByRole('region', { name: 'Counts by status' }).getByRole('listitem').first().waitFor();
  await until('the empty table', async () => (await signIn.locator('#actions-summary').innerText()).includes('Showing 0'));
  step('with a real key nothing is pre-filled, and a pasted token signs in');
  checkProblems('sign-in');
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.stack || error}`);
  if (problems.length) console.error(`also:\n  ${problems.join('\n  ')}`);
  for (const page of context.pages()) {
    await page.screenshot({ path: join(screenshots, `failure-${context.pages().indexOf(page)}.png`) }).catch(() => {});
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

// The storefront in Debian's headless Chromium (driven by playwright-core) against a running local
// stack. Every test makes its own sales and users, so reruns against the same stack pass.
//
//   PAGE_URL          the served page, e.g. http://127.0.0.1:9180/
//   API_URL           the API, e.g. http://127.0.0.1:9000
//   DYNAMODB_ENDPOINT DynamoDB Local, for `flash-sale-admin create-sale`
//   FLASH_SALE_ADMIN  path of the admin CLI (default ../target/debug/flash-sale-admin)
//   SCREENSHOT_DIR    where screenshots go (default test-results/screenshots)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

const env = (name, fallback) => process.env[name] || fallback;
const PAGE_URL = env('PAGE_URL', 'http://127.0.0.1:9180/');
const API_URL = env('API_URL', 'http://127.0.0.1:9000').replace(/\/+$/, '');
const DYNAMODB = env('DYNAMODB_ENDPOINT', 'http://127.0.0.1:8000');
const ADMIN = env('FLASH_SALE_ADMIN', '../target/debug/flash-sale-admin');
const SHOTS = env('SCREENSHOT_DIR', 'test-results/screenshots');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const RUN = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

const loopback = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
for (const url of [PAGE_URL, API_URL, DYNAMODB]) {
  if (!loopback(url)) throw new Error(`refusing to test against ${url}: loopback addresses only`);
}

let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  await warmUp();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

const rfc3339 = (offsetSecs) => new Date(Date.now() + offsetSecs * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * A sale of this run, created with the admin CLI like an operator would. `room` puts a waiting room
 * in front of it: `{ admitPerSecond, prequeueOpensIn, claimSeconds }`, each optional.
 * `holdSeconds` > 0 makes purchases reserve their item for that long, waiting for payment.
 * `variants` (`ID:LABEL:STOCK`, e.g. `eu42:EU 42:6`) gives it sizes, each with its own stock, in
 * place of `stock`; `maxPerCustomer` is the most items one buyer may hold.
 */
function createSale({
  name,
  stock = 50,
  startsIn = -60,
  endsIn = 3600,
  priceCents = 12900,
  currency = 'EUR',
  room,
  holdSeconds = 0,
  variants = [],
  maxPerCustomer = 1,
}) {
  const saleId = `web-${RUN}-${Math.random().toString(36).slice(2, 7)}`;
  const roomArgs = !room
    ? []
    : [
        '--waiting-room',
        ...(room.admitPerSecond ? ['--admit-per-second', String(room.admitPerSecond)] : []),
        ...(room.prequeueOpensIn !== undefined ? ['--prequeue-opens-at', rfc3339(room.prequeueOpensIn)] : []),
        ...(room.claimSeconds ? ['--claim-seconds', String(room.claimSeconds)] : []),
      ];
  execFileSync(
    ADMIN,
    [
      ...['--endpoint-url', DYNAMODB, '--table', 'flash-sale', 'create-sale', '--sale-id', saleId, '--name', name],
      ...['--price-cents', String(priceCents), '--currency', currency],
      ...(variants.length > 0 ? variants.flatMap((v) => ['--variant', v]) : ['--stock', String(stock), '--shards', '1']),
      ...(maxPerCustomer > 1 ? ['--max-per-customer', String(maxPerCustomer)] : []),
      ...['--starts-at', rfc3339(startsIn), '--ends-at', rfc3339(endsIn)],
      ...(holdSeconds > 0 ? ['--hold-seconds', String(holdSeconds)] : []),
      ...roomArgs,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return saleId;
}

/** Another admin command (`confirm`, `sweep`, …) against the test table; returns its output. */
function admin(...args) {
  return execFileSync(ADMIN, ['--endpoint-url', DYNAMODB, '--table', 'flash-sale', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
}

const user = (label) => `${label}-${RUN}`;

async function api(path, init = {}, timeoutMs = 30_000) {
  const resp = await fetch(`${API_URL}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  return { status: resp.status, body: await resp.json() };
}

const apiGet = (path) => api(path);
const apiBuy = (saleId, userId, admissionToken) =>
  api(`/sales/${saleId}/purchases`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(admissionToken ? { userId, admissionToken } : { userId }),
  });
/** An order of `quantity` items of one size, from another client. */
const apiBuySize = (saleId, userId, variantId, quantity = 1) =>
  api(`/sales/${saleId}/purchases`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId, variantId, quantity }),
  });
const apiJoin = (saleId, userId) =>
  api(`/sales/${saleId}/queue`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ userId }),
  });

/**
 * `cargo lambda watch` starts a function instance on demand, one more whenever all are busy, and
 * each start is a `cargo run` that may rebuild first. That can take far longer than a page should
 * wait, so start a few instances of each function up front, with requests that change nothing.
 */
async function warmUp() {
  const wait = 5 * 60_000;
  const parallel = (path, init, expected) =>
    Promise.all([1, 2, 3, 4].map(async () => assert.equal((await api(path, init, wait)).status, expected)));
  await parallel('/sales/demo', {}, 200);
  await parallel('/sales/demo/purchases', { method: 'POST', body: '{}' }, 400);
  await parallel(`/sales/demo/purchases/warm-up-${RUN}`, {}, 404);
  await parallel(`/sales/demo/queue/warm-up-${RUN}`, {}, 404); // no waiting room
}

/** A fresh page (own localStorage) that can reach nothing but loopback addresses. */
async function openPage(hash, { viewport = { width: 1100, height: 900 }, query = '', ...options } = {}) {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC', ...options });
  context.setDefaultTimeout(10_000);
  await context.route((url) => !loopback(url.href), (route) => route.abort());
  const page = await context.newPage();
  const url = new URL(PAGE_URL);
  for (const [k, v] of new URLSearchParams(query)) url.searchParams.set(k, v);
  url.hash = hash;
  page.gotoHash = () => page.goto(url.href);
  return page;
}

/** Retries `check` (which asserts) until it passes or `ms` runs out; then fails with its error. */
async function eventually(check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

// innerText is what a person sees: CSS text-transform applies, paragraphs are separate lines.
const text = (locator) => locator.innerText({ timeout: 2000 }).catch(() => '');
const buyButton = (page) => page.locator('form.buy button[type=submit]');
const status = (page) => page.getByRole('status');
const roomPanel = (page) => page.locator('section.room');
const orderPanel = (page) => page.locator('section.order-panel');
const orderTitle = (page) => page.locator('section.order-panel .order-title');
const cancelButton = (page) => page.getByRole('button', { name: 'Cancel order' });
const stockText = (page) => page.locator('.sale .stock-text');

/** Seconds left on a `Reserved — pay within m:ss` title. */
const holdSecondsShown = (title) => {
  const m = /pay within (\d+):(\d\d)/.exec(title);
  assert.ok(m, `no countdown in ${JSON.stringify(title)}`);
  return Number(m[1]) * 60 + Number(m[2]);
};
async function shot(page, name) {
  await page.mouse.move(0, 0); // no hover colours
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, animations: 'disabled', caret: 'hide' });
}

async function expectText(locator, pattern, ms) {
  return eventually(async () => {
    const seen = await text(locator);
    assert.match(seen, pattern);
    return seen;
  }, ms);
}

async function expectDisabled(locator, disabled, ms) {
  await eventually(async () => assert.equal(await locator.isDisabled({ timeout: 2000 }), disabled), ms);
}

async function close(page) {
  await page.context().close();
}

// ---------------------------------------------------------------------------------------------
// Tests

/** A test that fails instead of hanging: the steps inside wait seconds, not minutes. */
const it = (name, fn) => test(name, { timeout: 60_000 }, fn);

// First, while the seeded sale `line` is still in its pre-queue (it opens three minutes after the
// stack was seeded).
it('joining the seeded waiting-room sale in its pre-queue says places are drawn at opening; a reload keeps the place', async () => {
  let saleId = 'line';
  let { body: sale } = await apiGet(`/sales/${saleId}`);
  if (sale.queue?.state !== 'prequeue') {
    // A stack that has been up for more than three minutes is past the seeded opening: a sale
    // like it, of this run.
    saleId = createSale({ name: 'Limited jacket (waiting room)', stock: 30, startsIn: 180, priceCents: 8900, room: { admitPerSecond: 2 } });
    sale = (await apiGet(`/sales/${saleId}`)).body;
  }
  assert.equal(sale.queue.state, 'prequeue');
  const buyer = user('prequeue');

  const page = await openPage('#/');
  await page.gotoHash();
  const card = page.locator('li.card', { has: page.locator(`a[href="#/sales/${saleId}"]`) });
  await expectText(card, /Waiting room · join the line now: places are drawn at opening/);
  await card.getByRole('link').click();

  await expectText(page.getByRole('heading', { level: 1 }), /^Limited jacket \(waiting room\)$/);
  await expectText(buyButton(page), /^Join the line$/);
  await expectDisabled(buyButton(page), false);
  await expectText(roomPanel(page), /This sale has a waiting room/);
  await page.getByLabel('Your user id').fill(buyer);
  await buyButton(page).click();

  const shown = await expectText(roomPanel(page), /You are in the pre-queue: places are drawn at opening/);
  assert.ok(shown.includes(`The draw can be verified: commitment ${sale.queue.drawCommitment}`), shown);
  await expectText(buyButton(page), /^Waiting for the draw$/);
  assert.equal(await buyButton(page).isDisabled(), true);
  const field = page.getByLabel('Your user id');
  assert.equal(await field.getAttribute('readonly'), '');
  const { status: code, body: place } = await apiGet(`/sales/${saleId}/queue/${buyer}`);
  assert.equal(code, 200);
  assert.equal(place.state, 'waiting');
  assert.equal(place.position, null);
  await shot(page, 'room-prequeue');

  // The place is remembered per sale: a reload finds it again without joining.
  const joins = [];
  page.on('request', (r) => r.method() === 'POST' && r.url().endsWith(`/sales/${saleId}/queue`) && joins.push(r.url()));
  await page.reload();
  await expectText(roomPanel(page), /You are in the pre-queue: places are drawn at opening/);
  assert.equal(await page.getByLabel('Your user id').inputValue(), buyer);
  assert.deepEqual(joins, []);

  // Someone else on this device: the place stays on the server, the form is free again.
  await page.getByRole('button', { name: 'Use another user id' }).click();
  await expectText(buyButton(page), /^Join the line$/);
  assert.equal(await field.getAttribute('readonly'), null);
  await close(page);
});

it('the sale list shows the demo sale with its remaining stock', async () => {
  const { body: demo } = await apiGet('/sales/demo');
  const page = await openPage('#/');
  await page.gotoHash();
  const card = page.locator('li.card', { has: page.getByRole('link', { name: 'Demo sneaker drop' }) });
  await expectText(card, new RegExp(`${demo.remainingStock} of ${demo.totalStock} left`));
  await expectText(card, /€49\.99/);
  await shot(page, 'list');
  await card.getByRole('link').click();
  await expectText(page.getByRole('heading', { level: 1 }), /^Demo sneaker drop$/);
  await close(page);
});

it('the demo sale page shows price, state, stock and a countdown to the end', async () => {
  const { body: demo } = await apiGet('/sales/demo');
  const page = await openPage('#/sales/demo');
  await page.gotoHash();
  await expectText(page.getByRole('heading', { level: 1 }), /^Demo sneaker drop$/);
  await expectText(page.locator('.sale .price'), /^€49\.99$/);
  await expectText(page.locator('.sale .badge'), /^On sale now$/i);
  await expectText(page.locator('.sale .stock-text'), new RegExp(`^${demo.remainingStock} of ${demo.totalStock} left$`));
  await expectText(page.locator('#countdown'), /^Ends in \d\d:\d\d/);
  await expectText(buyButton(page), /^Buy now · €49\.99$/);
  await expectDisabled(buyButton(page), false);
  await shot(page, 'active-sale');
  await close(page);
});

it('the stock bar follows purchases made elsewhere within about a second', async () => {
  const saleId = createSale({ name: 'Court classic — white', stock: 10 });
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectText(page.locator('.sale .stock-text'), /^10 of 10 left$/);
  assert.equal((await apiBuy(saleId, user('elsewhere'))).status, 201);
  await expectText(page.locator('.sale .stock-text'), /^9 of 10 left$/, 3000);
  assert.equal(await page.getByRole('progressbar').getAttribute('aria-valuenow'), '9');
  await close(page);
});

it('buying with the keyboard shows the order id; buying again says already purchased', async () => {
  const saleId = createSale({ name: 'Trail runner — limited edition', stock: 50, priceCents: 15900 });
  const buyer = user('alice');
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectDisabled(buyButton(page), false);

  const field = page.getByLabel('Your user id');
  await field.focus();
  await page.keyboard.type(buyer);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Buy now · €159.00');
  await page.keyboard.press('Enter');

  const shown = await expectText(status(page), /You got it! Your order is confirmed\./);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.match(stored.orderId, /^\S{10,}$/);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), `page shows ${JSON.stringify(shown)}, order ${stored.orderId}`);
  await expectText(page.locator('.sale .stock-text'), /^49 of 50 left$/, 3000);
  await shot(page, 'purchased');

  await buyButton(page).click();
  const again = await expectText(status(page), /You already bought this item\. It is one per person\./);
  assert.ok(again.includes(`Order id ${stored.orderId}`), again);
  await shot(page, 'already-purchased');

  await page.getByRole('button', { name: 'Check my purchase' }).click();
  await expectText(status(page), new RegExp(`You have this item\\.\\s+Order id ${stored.orderId}`));

  await field.fill(user('nobody'));
  await page.getByRole('button', { name: 'Check my purchase' }).click();
  await expectText(status(page), new RegExp(`No purchase found\\s+${user('nobody')} has not bought this item\\.`));
  await close(page);
});

it('an earlier buyer answered sold_out (the server\'s sold-out hint) is shown their order', async () => {
  const saleId = createSale({ name: 'Sold out while you clicked', stock: 5 });
  const buyer = user('early');
  assert.equal((await apiBuy(saleId, buyer)).status, 201);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  const page = await openPage(`#/sales/${saleId}`);
  // The server may answer sold_out from its hint without checking this buyer's order.
  await page.route(`**/sales/${saleId}/purchases`, (route) =>
    route.request().method() !== 'POST'
      ? route.continue()
      : route.fulfill({
          status: 409,
          contentType: 'application/problem+json',
          headers: { 'Access-Control-Allow-Origin': '*' },
          body: JSON.stringify({ type: 'about:blank', status: 409, code: 'sold_out' }),
        }),
  );
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  const shown = await expectText(status(page), /You already bought this item\. It is one per person\./);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), shown);
  await close(page);
});

it('Buy is disabled while an order is in flight, so one press sends one order', async () => {
  const saleId = createSale({ name: 'Double-click guard', stock: 5 });
  const page = await openPage(`#/sales/${saleId}`);
  let posts = 0;
  await page.route(`**/sales/${saleId}/purchases`, async (route) => {
    if (route.request().method() === 'POST') {
      posts += 1;
      await sleep(800);
    }
    await route.continue();
  });
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(user('fast-clicker'));
  await expectDisabled(buyButton(page), false);
  // Three clicks in the same task: only the first may get through.
  await buyButton(page).evaluate((b) => {
    b.click();
    b.click();
    b.click();
  });
  await expectText(buyButton(page), /^Buying…$/, 500);
  assert.equal(await buyButton(page).isDisabled(), true);
  await expectText(status(page), /You got it!/);
  assert.equal(posts, 1);
  await close(page);
});

it('a sold-out sale disables Buy and says why', async () => {
  const saleId = createSale({ name: 'Gold edition — 1 pair only', stock: 1, priceCents: 49900 });
  assert.equal((await apiBuy(saleId, user('first-in-line'))).status, 201);
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectText(page.locator('.sale .badge'), /^Sold out$/i);
  await expectText(page.locator('.sale .stock-text'), /^None of 1 left$/);
  await expectDisabled(buyButton(page), true);
  await expectText(page.locator('#buy-reason'), /^Every item has been sold\.$/);
  await shot(page, 'sold-out');
  await close(page);
});

it('an upcoming sale counts down on the server clock, even when the device clock is wrong', async () => {
  const saleId = createSale({ name: 'Midnight hoodie drop', startsIn: 3600, endsIn: 7200, priceCents: 7900 });
  const page = await openPage(`#/sales/${saleId}`);
  // The device clock is three hours behind: a countdown on it would say about 04:00:00.
  await page.clock.install({ time: Date.now() - 3 * 3600 * 1000 });
  await page.gotoHash();
  await expectText(page.locator('.sale .badge'), /^Coming soon$/i);
  await expectText(page.locator('#countdown'), /^Starts in (59:[0-5]\d|01:00:00)$/);
  await expectDisabled(buyButton(page), true);
  await expectText(page.locator('#buy-reason'), /unlocks when the countdown ends/);
  await shot(page, 'upcoming');
  await close(page);
});

it('Buy unlocks by itself when the countdown reaches the start', async () => {
  const saleId = createSale({ name: 'Starts in a moment', startsIn: 4, endsIn: 3600 });
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectText(page.locator('#countdown'), /^Starts in 00:0\d$/);
  await expectDisabled(buyButton(page), true);
  await expectDisabled(buyButton(page), false, 10_000);
  await expectText(page.locator('#countdown'), /^Ends in /);
  await page.getByLabel('Your user id').fill(user('early-bird'));
  await buyButton(page).click();
  await expectText(status(page), /You got it!/);
  await close(page);
});

it('an ended sale shows that it ended and keeps Buy disabled', async () => {
  const page = await openPage('#/sales/ended');
  await page.gotoHash();
  await expectText(page.locator('.sale .badge'), /^Ended$/i);
  await expectText(page.locator('#countdown'), /^This sale has ended$/);
  await expectDisabled(buyButton(page), true);
  await close(page);
});

test('every purchase outcome has a clear message', { timeout: 90_000 }, async () => {
  const saleId = createSale({ name: 'Outcome messages', stock: 20 });
  const page = await openPage(`#/sales/${saleId}`);
  let next; // what the mocked purchase endpoint answers next; undefined lets the real API answer
  await page.route(`**/sales/${saleId}/purchases`, async (route) => {
    if (route.request().method() !== 'POST' || !next) return route.continue();
    if (next === 'network') return route.abort('connectionrefused');
    const { status: code, body, headers = {} } = next;
    return route.fulfill({
      status: code,
      contentType: 'application/problem+json',
      headers: { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Retry-After', ...headers },
      body: JSON.stringify({ type: 'about:blank', status: code, ...body }),
    });
  });
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(user('outcomes'));
  await expectDisabled(buyButton(page), false);

  const cases = [
    [{ status: 409, body: { code: 'sold_out' } }, /Sold out\s+Every item was sold before your order arrived\./],
    [{ status: 403, body: { code: 'sale_ended' } }, /The sale has ended\s+Orders are no longer accepted\./],
    [
      { status: 403, body: { code: 'sale_not_started', startsAt: '2030-01-02T09:00:00.000Z' } },
      /The sale has not started yet\s+It opens on Jan 2, 2030, 9:00:00\sAM UTC\./,
    ],
    [{ status: 404, body: { code: 'sale_not_found' } }, /This sale does not exist/],
  ];
  for (const [answer, message] of cases) {
    next = answer;
    await buyButton(page).click();
    await expectText(status(page), message);
  }

  // No answer at all, every time: the page retries by itself (a few seconds), then gives up.
  next = 'network';
  await buyButton(page).click();
  await expectText(status(page), /^Busy — trying again in \d s/);
  await expectText(status(page), /Could not reach the shop\s+Your order is not confirmed\. Check your connection and try again\./, 15_000);

  // Busy every time: the automatic retries wait out Retry-After, then Buy stays off for it.
  next = { status: 503, body: { code: 'temporarily_unavailable', retryAfterSeconds: 1 }, headers: { 'Retry-After': '1' } };
  await buyButton(page).click();
  await expectText(status(page), /^Busy — trying again in \d s/);
  await expectText(status(page), /The shop is very busy\s+Your order is not confirmed\. Try again in 1 second\./, 20_000);
  assert.match(await text(buyButton(page)), /^Try again in \d s$/);
  assert.equal(await buyButton(page).isDisabled(), true);
  await expectDisabled(buyButton(page), false, 3000);

  // The real API: a user id with a leading space is invalid_request.
  next = undefined;
  await page.getByLabel('Your user id').fill(` ${user('spacey')}`);
  await buyButton(page).click();
  await expectText(status(page), /Please check your details\s+\S+/);

  // Nothing typed: the page asks for a user id without calling the API.
  await page.getByLabel('Your user id').fill('');
  await buyButton(page).click();
  await expectText(status(page), /Enter your user id first/);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'user-id');
  await close(page);
});

/** Requests to a sale's purchase endpoint that are answered by `answers` in turn (then the API). */
async function scriptPurchases(page, saleId, answers) {
  const keys = [];
  await page.route(`**/sales/${saleId}/purchases`, async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    keys.push(route.request().headers()['idempotency-key']);
    const answer = answers.shift();
    if (!answer) return route.continue();
    if (answer === 'network') return route.abort('connectionrefused');
    if (answer === 'commit-then-lose') {
      await route.fetch(); // the API stores the order; the page never hears of it
      return route.abort('connectionreset');
    }
    return route.fulfill({
      status: answer.status,
      contentType: answer.contentType ?? 'application/problem+json',
      headers: { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Retry-After', ...answer.headers },
      body: JSON.stringify(answer.body),
    });
  });
  return keys;
}

/** From now on, every text the status region shows goes to `window.statusLog`. */
async function recordStatuses(page) {
  await page.evaluate(() => {
    window.statusLog = [];
    const region = document.querySelector('[role=status]');
    new MutationObserver(() => {
      const t = region.innerText.trim();
      if (t && window.statusLog.at(-1) !== t) window.statusLog.push(t);
    }).observe(region, { subtree: true, childList: true, characterData: true });
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

it('a throttled order (429) is retried by itself with the same Idempotency-Key, Buy off meanwhile', async () => {
  const saleId = createSale({ name: 'Throttled drop', stock: 5 });
  const buyer = user('throttled');
  const page = await openPage(`#/sales/${saleId}`);
  // API Gateway's throttle: not problem+json.
  const keys = await scriptPurchases(page, saleId, [
    { status: 429, contentType: 'application/json', body: { message: 'Too Many Requests' } },
  ]);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await recordStatuses(page);
  await buyButton(page).click();
  const shown = await expectText(status(page), /You got it! Your order is confirmed\./);
  // The wait before the retry may be a blink (full jitter below half a second): read the log.
  const seen = await page.evaluate(() => window.statusLog);
  assert.ok(seen.some((t) => /^Busy — trying again in 1 s/.test(t)), JSON.stringify(seen));
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), shown);
  assert.equal(keys.length, 2, `one press, two attempts: ${JSON.stringify(keys)}`);
  assert.match(keys[0], UUID);
  assert.equal(keys[1], keys[0], 'the retry carries the same Idempotency-Key');

  // The next press is a new order attempt: a new key.
  await buyButton(page).click();
  await expectText(status(page), /You already bought this item/);
  assert.equal(keys.length, 3);
  assert.notEqual(keys[2], keys[0]);
  await close(page);
});

it('a busy answer (503) shows a countdown, keeps Buy off, then retries with the same key', async () => {
  const saleId = createSale({ name: 'Busy drop', stock: 5 });
  const buyer = user('patient');
  const page = await openPage(`#/sales/${saleId}`);
  const keys = await scriptPurchases(page, saleId, [
    { status: 503, body: { type: 'about:blank', status: 503, code: 'temporarily_unavailable', retryAfterSeconds: 2 }, headers: { 'Retry-After': '2' } },
  ]);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(status(page), /^Busy — trying again in [23] s\s+The shop is very busy\. Your order is not confirmed yet/);
  await expectText(buyButton(page), /^Trying again in [1-3] s$/);
  assert.equal(await buyButton(page).isDisabled(), true, 'no hammering while the page waits');
  await shot(page, 'busy-retrying');
  await expectText(status(page), /You got it!/, 8000);
  assert.equal(keys.length, 2);
  assert.equal(keys[1], keys[0]);
  await close(page);
});

it('an order whose answer was lost is retried with its key and shows the one stored order', async () => {
  const saleId = createSale({ name: 'Lost answer', stock: 5 });
  const buyer = user('lost-answer');
  const page = await openPage(`#/sales/${saleId}`);
  const keys = await scriptPurchases(page, saleId, ['commit-then-lose']);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  const { body: stored } = await eventually(async () => {
    const r = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
    assert.equal(r.status, 200);
    return r;
  });
  // With the key, the API answers the original 201 again; an API that ignores the key answers
  // already_purchased with the same order. Either way the shopper sees the one stored order.
  const shown = await expectText(status(page), /You got it!|You already bought this item/, 10_000);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), shown);
  assert.equal(keys.length, 2);
  assert.equal(keys[1], keys[0]);
  const { body: sale } = await apiGet(`/sales/${saleId}`);
  assert.equal(sale.remainingStock, 4, 'one press bought one item');
  await close(page);
});

it('a sale id that does not exist says so', async () => {
  const page = await openPage(`#/sales/missing-${RUN}`);
  await page.gotoHash();
  await expectText(page.getByRole('heading', { level: 1 }), /^This sale does not exist$/);
  await close(page);
});

it('in JWT mode the page sends the token it was given as a Bearer token', async () => {
  const saleId = createSale({ name: 'Members only', stock: 5 });
  const sub = user('jwt-user');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub })}.c2lnbmF0dXJl`;
  const page = await openPage(`#/sales/${saleId}`, { query: `token=${token}` });
  const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith(`/sales/${saleId}/purchases`));
  await page.gotoHash();
  await expectDisabled(buyButton(page), false);
  assert.ok(!page.url().includes('token='), `the token stays in the address bar: ${page.url()}`);
  const field = page.getByLabel('Your user id');
  assert.equal(await field.inputValue(), sub);
  assert.equal(await field.getAttribute('readonly'), '');
  await buyButton(page).click();
  const request = await sent;
  assert.equal(request.headers().authorization, `Bearer ${token}`);
  assert.deepEqual(request.postDataJSON(), { userId: sub });
  // The local stack runs AUTH_MODE=body, so it takes the same user from the body.
  await expectText(status(page), /You got it!/);

  await page.getByText('Sign in with a token (JWT mode)').click();
  await page.getByRole('button', { name: 'Forget token' }).click();
  assert.equal(await field.getAttribute('readonly'), null);
  assert.equal(await page.evaluate(() => localStorage.getItem('flash-sale.token')), null);
  await close(page);
});

/** Opens a sale's page as `userId` and presses its main button once it is enabled (Join the line, or Buy). */
async function pressFirstButtonAs(saleId, userId) {
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(userId);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  return page;
}

// The waiting room, on the real stack: sales of this run whose opening, draw, admission, sell-out
// and token expiry happen within seconds.

test('a line that opens while the page is open: pre-queue, drawn place, admitted, Buy with the token, 201', { timeout: 90_000 }, async () => {
  const saleId = createSale({ name: 'Opening night drop', stock: 10, startsIn: 14, room: { admitPerSecond: 50, prequeueOpensIn: 6 } });
  const buyer = user('opening');
  const page = await openPage(`#/sales/${saleId}`);
  const orders = [];
  page.on('request', (r) => r.method() === 'POST' && r.url().endsWith(`/sales/${saleId}/purchases`) && orders.push(r.postDataJSON()));
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectText(roomPanel(page), /The line opens in 00:0\d/);
  await expectText(buyButton(page), /^Join the line$/);
  assert.equal(await buyButton(page).isDisabled(), true);

  // The pre-queue opens on the server's clock: Join unlocks by itself.
  await expectDisabled(buyButton(page), false, 15_000);
  await buyButton(page).click();
  await expectText(roomPanel(page), /You are in the pre-queue: places are drawn at opening/);

  // The sale starts, the draw follows 5 s later, then 50 admissions a second: this page's turn.
  await expectText(roomPanel(page), /It’s your turn! Buy within 0\d:\d\d/, 40_000);
  await expectText(roomPanel(page), /Your place, drawn at opening: 1\./);
  await expectText(buyButton(page), /^Buy now · €129\.00$/);
  await expectDisabled(buyButton(page), false);
  const { body: place } = await apiGet(`/sales/${saleId}/queue/${buyer}`);
  assert.equal(place.state, 'admitted');
  await shot(page, 'room-admitted');

  await buyButton(page).click();
  const shown = await expectText(status(page), /You got it! Your order is confirmed\./);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), shown);
  assert.equal(orders.length, 1);
  assert.deepEqual(orders[0], { userId: buyer, admissionToken: place.admissionToken });
  await expectText(roomPanel(page), /You have your item/);
  await close(page);
});

it('sold out ends the wait at once: a one-item sale that someone admitted before buys', async () => {
  // Stock 1 admits one person at a time (an item set aside per admission): the page's buyer is third.
  const saleId = createSale({ name: 'One of one (waiting room)', stock: 1, startsIn: -10, room: { admitPerSecond: 50 } });
  const [first, second, buyer] = [user('first'), user('second'), user('third')];
  assert.equal((await apiJoin(saleId, first)).status, 200);
  assert.equal((await apiJoin(saleId, second)).status, 200);
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await expectText(buyButton(page), /^Join the line$/);
  await buyButton(page).click();
  await expectText(roomPanel(page), /You are in line — \d+ ahead of you, about \d+ s/, 15_000);
  await expectText(buyButton(page), /^Waiting for your turn$/);
  assert.equal(await buyButton(page).isDisabled(), true);
  assert.equal(await page.getByRole('progressbar', { name: 'Your way through the line' }).count(), 1);
  await shot(page, 'room-waiting');

  const token = await eventually(async () => {
    const { body } = await apiGet(`/sales/${saleId}/queue/${first}`);
    assert.equal(body.state, 'admitted');
    return body.admissionToken;
  }, 20_000);
  assert.equal((await apiBuy(saleId, first, token)).status, 201);

  await expectText(roomPanel(page), /Sold out — the wait is over\s+Every item was sold before your turn\./, 5000);
  await expectText(buyButton(page), /^Sold out$/);
  assert.equal(await buyButton(page).isDisabled(), true);
  await shot(page, 'room-sold-out');
  await close(page);
});

it('an admission that is not used in time expires: the countdown ends and Buy goes away', async () => {
  const saleId = createSale({ name: 'Short admission', stock: 5, startsIn: -10, room: { admitPerSecond: 50, claimSeconds: 12 } });
  const page = await pressFirstButtonAs(saleId, user('slow'));
  await expectText(roomPanel(page), /It’s your turn! Buy within 00:(0\d|1[0-2])/, 15_000);
  // The item is set aside exactly as long as the token buys.
  await expectText(roomPanel(page), /An item is set aside for you until/);
  await expectDisabled(buyButton(page), false);
  await expectText(roomPanel(page), /Your admission expired/, 20_000);
  await expectText(buyButton(page), /^Admission expired$/);
  assert.equal(await buyButton(page).isDisabled(), true);
  await close(page);
});

// Orders with holds: reserved until paid (the payment backend confirms), cancelled by the buyer, or
// released after the hold runs out.

it('a reserved order counts down on the server clock; Cancel gives the item back and Buy works again', async () => {
  const saleId = createSale({ name: 'Reserved runner', stock: 10, priceCents: 11900, holdSeconds: 120 });
  const buyer = user('holder');
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();

  await expectText(status(page), /You got it! The item is reserved for you\./);
  const first = await expectText(orderTitle(page), /^Reserved — pay within (1:5\d|2:00)$/);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.equal(stored.status, 'reserved');
  const panel = await expectText(orderPanel(page), /Payment confirms your order/);
  assert.ok(panel.includes(`Order id ${stored.orderId}`), panel);
  assert.ok(!(await text(status(page))).includes('confirmed'), 'a reserved order is not called confirmed');
  await expectText(stockText(page), /^9 of 10 left$/, 3000);
  // It counts down.
  await eventually(async () => assert.ok(holdSecondsShown(await text(orderTitle(page))) < holdSecondsShown(first)), 3000);
  await shot(page, 'order-reserved');

  await cancelButton(page).click();
  await expectText(orderTitle(page), /^Cancelled — the item went back on sale$/);
  assert.equal(await cancelButton(page).count(), 0);
  await expectText(stockText(page), /^10 of 10 left$/, 3000);
  assert.equal((await apiGet(`/sales/${saleId}/purchases/${buyer}`)).body.status, 'cancelled');
  await expectText(buyButton(page), /^Buy again · €119\.00$/);
  await shot(page, 'order-cancelled');

  await buyButton(page).click();
  await expectText(orderTitle(page), /^Reserved — pay within (1:5\d|2:00)$/);
  const { body: again } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.equal(again.status, 'reserved');
  assert.notEqual(again.orderId, stored.orderId, 'a new order');
  assert.ok((await text(orderPanel(page))).includes(`Order id ${again.orderId}`));
  await expectText(stockText(page), /^9 of 10 left$/, 3000);
  await expectDisabled(cancelButton(page), false);
  await close(page);
});

it('a hold that runs out says so at zero; once released the order shows expired and the item is back', async () => {
  const saleId = createSale({ name: 'Three-second hold', stock: 5, holdSeconds: 3 });
  const buyer = user('slow-payer');
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(orderTitle(page), /^Reserved — pay within 0:0[1-3]$/);
  await expectText(stockText(page), /^4 of 5 left$/, 3000);

  await expectText(orderTitle(page), /^Hold expired — the item goes back on sale$/, 6000);
  assert.equal(await cancelButton(page).count(), 0);
  await expectText(orderPanel(page), /You may buy again now/);
  // Still reserved on the server until released, but buying again releases it first.
  await expectText(buyButton(page), /^Buy again · €129\.00$/);
  await expectDisabled(buyButton(page), false);
  await shot(page, 'order-hold-ended');

  admin('sweep');
  assert.equal((await apiGet(`/sales/${saleId}/purchases/${buyer}`)).body.status, 'expired');
  // The page looks again by itself.
  await expectText(orderTitle(page), /^Expired — the item went back on sale$/, 10_000);
  await expectText(stockText(page), /^5 of 5 left$/, 3000);
  await expectText(buyButton(page), /^Buy again · €129\.00$/);
  await expectDisabled(buyButton(page), false);
  await shot(page, 'order-expired');

  await buyButton(page).click();
  await expectText(status(page), /You got it! The item is reserved for you\./);
  assert.equal((await apiGet(`/sales/${saleId}/purchases/${buyer}`)).body.status, 'reserved');
  await close(page);
});

it('a confirmed order shows Confirmed without Cancel; cancelling one that was just paid shows it confirmed', async () => {
  const saleId = createSale({ name: 'Paid in time', stock: 5, holdSeconds: 120 });
  const buyer = user('payer');
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(orderTitle(page), /^Reserved — pay within/);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);

  // The payment backend confirms while the page still shows the reservation.
  admin('confirm', '--sale-id', saleId, '--order-id', stored.orderId);
  assert.equal((await apiGet(`/sales/${saleId}/purchases/${buyer}`)).body.status, 'confirmed');
  await cancelButton(page).click();
  await expectText(orderTitle(page), /^Confirmed$/);
  await expectText(status(page), /Your order is already confirmed\s+It has been paid, so it can no longer be cancelled\./);
  assert.equal(await cancelButton(page).count(), 0);
  assert.equal((await apiGet(`/sales/${saleId}/purchases/${buyer}`)).body.status, 'confirmed');

  await page.getByRole('button', { name: 'Check my purchase' }).click();
  const shown = await expectText(orderPanel(page), /^Confirmed\s+Order id /);
  assert.ok(shown.includes(`Order id ${stored.orderId}`), shown);
  assert.equal(await cancelButton(page).count(), 0);
  await shot(page, 'order-confirmed');

  // Coming back later: the page finds the order by itself.
  await page.reload();
  await expectText(orderTitle(page), /^Confirmed$/);
  assert.equal(await cancelButton(page).count(), 0);
  await close(page);
});

it('a payment made elsewhere shows up on the open page by itself', async () => {
  const saleId = createSale({ name: 'Paid on another device', stock: 5, holdSeconds: 120 });
  const buyer = user('other-device');
  assert.equal((await apiBuy(saleId, buyer)).status, 201);
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await page.getByRole('button', { name: 'Check my purchase' }).click();
  await expectText(orderTitle(page), /^Reserved — pay within (1:5\d|2:00)$/);
  await expectDisabled(cancelButton(page), false);
  const { body: stored } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  admin('confirm', '--sale-id', saleId, '--order-id', stored.orderId);
  await expectText(orderTitle(page), /^Confirmed$/, 15_000);
  assert.equal(await cancelButton(page).count(), 0);
  await close(page);
});

// ---------------------------------------------------------------------------------------------
// Sizes and quantities

const sizeRadio = (page, label) => page.getByRole('radio', { name: label, exact: true });
const sizes = (page) => page.locator('fieldset.sizes');
const ordersBox = (page) => page.locator('section.orders');

/** The sale as the table holds it (`flash-sale-admin show-sale`): variants' stock, items held live. */
function storedSale(saleId) {
  return JSON.parse(admin('show-sale', '--sale-id', saleId));
}

/** Every order of `userId` in the table (`flash-sale-admin buyers`) that holds its items. */
function storedLiveOrders(saleId, userId) {
  return admin('buyers', '--sale-id', saleId)
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((o) => o.userId === userId && (o.status === 'confirmed' || o.status === 'reserved'));
}

const variantOf = (sale, variantId) => sale.variants.find((v) => v.variantId === variantId);

it('buying a size: EU 42 × 2 on a two-per-customer sale; the order says so and that size has 2 fewer', async () => {
  const saleId = createSale({
    name: 'Runner — sizes',
    variants: ['eu40:EU 40:5', 'eu42:EU 42:6', 'eu44:EU 44:3'],
    maxPerCustomer: 2,
  });
  const buyer = user('sized');
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectText(sizes(page), /EU 42\s*6 left/);
  // No size yet: Buy waits for one.
  await expectDisabled(buyButton(page), true);
  await expectText(page.locator('#buy-reason'), /^Pick a size first\.$/);
  await expectText(page.locator('#user-id-hint'), /Up to 2 items per user id\./);

  await sizeRadio(page, 'EU 42').check();
  await expectDisabled(buyButton(page), false);
  assert.equal(await page.getByLabel('Quantity').inputValue(), '1');
  await expectDisabled(page.getByRole('button', { name: 'One fewer' }), true);
  await page.getByRole('button', { name: 'One more' }).click();
  assert.equal(await page.getByLabel('Quantity').inputValue(), '2');
  // The limit is 2: the stepper goes no further.
  await expectDisabled(page.getByRole('button', { name: 'One more' }), true);
  await expectText(buyButton(page), /^Buy 2 · €258\.00$/);
  await page.getByLabel('Your user id').fill(buyer);
  await shot(page, 'size-picked');
  await buyButton(page).click();

  const shown = await expectText(status(page), /You got it! Your order is confirmed\./);
  assert.match(shown, /EU 42 × 2\. Bought by /);
  await expectText(ordersBox(page), /You hold 2 of 2 items allowed per customer\./);
  await expectText(ordersBox(page), /EU 42 × 2 · Confirmed/);
  const { body: order } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.equal(order.variantId, 'eu42');
  assert.equal(order.quantity, 2);
  assert.ok(shown.includes(`Order id ${order.orderId}`), shown);

  // The table: EU 42's stock is 2 lower, the others untouched, and the buyer holds those 2.
  const stored = storedSale(saleId);
  assert.deepEqual(
    stored.sale.variants.map((v) => [v.variantId, v.remainingStock]),
    [['eu40', 5], ['eu42', 4], ['eu44', 3]],
  );
  assert.deepEqual(stored.liveItemsByVariant, { eu42: 2 });
  assert.deepEqual(storedLiveOrders(saleId, buyer).map((o) => [o.variantId, o.quantity]), [['eu42', 2]]);
  // And the page's next status poll shows it.
  await expectText(sizes(page), /EU 42\s*4 left/, 3000);
  await shot(page, 'size-bought');
  await close(page);
});

it('a size that sells out while the page is open is turned off at the next status poll, and the page says so', async () => {
  const saleId = createSale({ name: 'Runner — last pair in EU 40', variants: ['eu40:EU 40:1', 'eu41:EU 41:4'], maxPerCustomer: 2 });
  const page = await openPage(`#/sales/${saleId}`);
  await page.gotoHash();
  await expectText(sizes(page), /EU 40\s*1 left/);
  await sizeRadio(page, 'EU 40').check();
  await page.getByLabel('Your user id').fill(user('too-slow'));
  await expectDisabled(buyButton(page), false);
  // Only one EU 40 is left: the stepper stops at 1 although the limit is 2.
  await expectDisabled(page.getByRole('button', { name: 'One more' }), true);
  await expectText(page.locator('#quantity-hint'), /Only 1 left in this size\./);

  // Another client buys the last EU 40.
  const { status: code, body } = await apiBuySize(saleId, user('quicker'), 'eu40');
  assert.equal(code, 201, JSON.stringify(body));
  await expectDisabled(sizeRadio(page, 'EU 40'), true, 3000);
  await expectText(page.locator('#size-note'), /^EU 40 just sold out — please pick another size\.$/);
  await expectText(sizes(page), /EU 40\s*Sold out/);
  assert.equal(await sizeRadio(page, 'EU 40').isChecked(), false);
  await expectDisabled(buyButton(page), true);
  await expectText(page.locator('#buy-reason'), /^Pick a size first\.$/);
  assert.equal(await sizeRadio(page, 'EU 41').isDisabled(), false);
  assert.equal(variantOf(storedSale(saleId).sale, 'eu40').remainingStock, 0);
  await shot(page, 'size-sold-out');

  // Another size still sells.
  await sizeRadio(page, 'EU 41').check();
  await buyButton(page).click();
  await expectText(status(page), /You got it![\s\S]*EU 41\. Bought by/);
  assert.equal(await sizeRadio(page, 'EU 40').isDisabled(), true);
  await close(page);
});

it('the limit holds across two tabs: tab 1 buys 2 in two orders, tab 2 asks for 1 more and is told it holds 2', async () => {
  const saleId = createSale({ name: 'Runner — two per customer', variants: ['eu41:EU 41:10', 'eu42:EU 42:10'], maxPerCustomer: 2 });
  const buyer = user('two-tabs');
  const [tab1, tab2] = [await openPage(`#/sales/${saleId}`), await openPage(`#/sales/${saleId}`)];
  for (const tab of [tab1, tab2]) {
    await tab.gotoHash();
    await tab.getByLabel('Your user id').fill(buyer);
  }
  await sizeRadio(tab1, 'EU 41').check();
  await expectText(buyButton(tab1), /^Buy now · €129\.00$/);
  await buyButton(tab1).click();
  await expectText(status(tab1), /You got it! Your order is confirmed\.\s+Order id \S+\s+EU 41\./);
  // 1 of 2 held: the stepper goes to 1 more at most.
  await expectText(tab1.locator('#quantity-hint'), /^Up to 2 per customer\. You hold 1, so 1 more at most\.$/);
  await eventually(async () => assert.equal(await tab1.getByLabel('Quantity').getAttribute('max'), '1'));
  assert.equal(await tab1.getByRole('button', { name: 'One more' }).isDisabled(), true);
  await sizeRadio(tab1, 'EU 42').check();
  await buyButton(tab1).click();
  await expectText(status(tab1), /You got it! Your order is confirmed\.\s+Order id \S+\s+EU 42\./);
  await expectText(ordersBox(tab1), /You hold 2 of 2 items allowed per customer\./);

  await sizeRadio(tab2, 'EU 42').check();
  await buyButton(tab2).click();
  await expectText(status(tab2), /Limit reached: you already hold 2 items\s+Your order is not confirmed\. This sale allows 2 per customer, so you cannot buy more\./);
  await expectText(ordersBox(tab2), /You hold 2 of 2 items allowed per customer\./);
  await shot(tab2, 'limit-reached');

  // The table: exactly the 2 of tab 1, one of each size.
  const orders = storedLiveOrders(saleId, buyer);
  assert.deepEqual(orders.map((o) => [o.variantId, o.quantity]).sort(), [['eu41', 1], ['eu42', 1]]);
  const stored = storedSale(saleId);
  assert.deepEqual(stored.liveItemsByVariant, { eu41: 1, eu42: 1 });
  assert.equal(variantOf(stored.sale, 'eu41').remainingStock, 9);
  assert.equal(variantOf(stored.sale, 'eu42').remainingStock, 9);
  // The look-up lists every live order, newest first, and the items they hold.
  const { body: lookup } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.equal(lookup.held, 2);
  assert.deepEqual(lookup.orders.map((o) => o.variantId), ['eu42', 'eu41']);
  assert.deepEqual(lookup.orders.map((o) => o.orderId).sort(), orders.map((o) => o.orderId).sort());
  assert.equal(lookup.orderId, lookup.orders[0].orderId);

  // Tab 2 opened again knows nothing but what its look-up answers: both orders, 2 held.
  const looked = tab2.waitForResponse((r) => r.request().method() === 'GET' && r.url().endsWith(`/sales/${saleId}/purchases/${buyer}`));
  await tab2.reload();
  const answer = await (await looked).json();
  assert.equal(answer.held, 2);
  assert.equal(answer.orders.length, 2);
  await expectText(ordersBox(tab2), /You hold 2 of 2 items allowed per customer\./);
  const lines = tab2.locator('section.orders li.order-line');
  await eventually(async () => assert.equal(await lines.count(), 2));
  for (const o of lookup.orders) {
    const label = o.variantId === 'eu41' ? 'EU 41' : 'EU 42';
    await expectText(tab2.locator(`section.orders li[data-order-id="${o.orderId}"]`), new RegExp(`^${label} · Confirmed · Order id ${o.orderId}`));
  }
  // A sale without holds: nothing to cancel.
  assert.equal(await ordersBox(tab2).getByRole('button').count(), 0);
  await close(tab1);
  await close(tab2);
});

it('each reserved order has its own Cancel: cancelling the older of two gives its size back, the newer stays reserved', async () => {
  const saleId = createSale({ name: 'Runner — reserved sizes', variants: ['eu41:EU 41:5', 'eu42:EU 42:5'], maxPerCustomer: 2, holdSeconds: 120 });
  const buyer = user('two-orders');
  const page = await openPage(`#/sales/${saleId}`);
  const deletes = [];
  page.on('request', (r) => r.method() === 'DELETE' && deletes.push(r.url()));
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  await sizeRadio(page, 'EU 41').check();
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(status(page), /You got it! The item is reserved for you\.[\s\S]*EU 41\./);
  await sizeRadio(page, 'EU 42').check();
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(status(page), /You got it! The item is reserved for you\.[\s\S]*EU 42\./);
  await expectText(ordersBox(page), /You hold 2 of 2 items allowed per customer\./);

  const { body: before } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.deepEqual(before.orders.map((o) => [o.variantId, o.status]), [['eu42', 'reserved'], ['eu41', 'reserved']]);
  const [newer, older] = before.orders;
  const line = (o) => page.locator(`section.orders li[data-order-id="${o.orderId}"]`);
  await expectText(line(older), /^EU 41 · Reserved, waiting for payment · Order id /);
  await expectText(line(newer), /^EU 42 · Reserved, waiting for payment · Order id /);
  await expectDisabled(line(newer).getByRole('button', { name: 'Cancel EU 42' }), false);
  assert.equal(variantOf(storedSale(saleId).sale, 'eu41').remainingStock, 4);
  await shot(page, 'order-list-reserved');

  await line(older).getByRole('button', { name: 'Cancel EU 41' }).click();
  await expectText(status(page), /Order cancelled — EU 41 went back on sale\s+Order id \S+\s+Your other orders stay as they are\./);
  assert.deepEqual(deletes, [`${API_URL}/sales/${saleId}/purchases/${buyer}?orderId=${older.orderId}`]);
  // The list, from the look-up: the newer order alone, still reserved and still cancellable.
  await expectText(ordersBox(page), /You hold 1 of 2 items allowed per customer\./);
  await eventually(async () => assert.equal(await line(older).count(), 0));
  await expectText(line(newer), /^EU 42 · Reserved, waiting for payment/);
  await expectDisabled(line(newer).getByRole('button', { name: 'Cancel EU 42' }), false);
  // The order panel shows the newer order, untouched.
  await expectText(orderTitle(page), /^Reserved — pay within/);
  assert.ok((await text(orderPanel(page))).includes(`Order id ${newer.orderId}`));

  // The store: that order cancelled, the other reserved, EU 41 back by its quantity.
  const byId = async (o) => (await apiGet(`/sales/${saleId}/purchases/${buyer}?orderId=${o.orderId}`)).body;
  assert.equal((await byId(older)).status, 'cancelled');
  assert.equal((await byId(newer)).status, 'reserved');
  const stored = storedSale(saleId);
  assert.equal(variantOf(stored.sale, 'eu41').remainingStock, 5);
  assert.equal(variantOf(stored.sale, 'eu42').remainingStock, 4);
  assert.deepEqual(stored.liveItemsByVariant, { eu42: 1 });
  const { body: after } = await apiGet(`/sales/${saleId}/purchases/${buyer}`);
  assert.equal(after.held, 1);
  assert.deepEqual(after.orders.map((o) => o.orderId), [newer.orderId]);
  await expectText(sizes(page), /EU 41\s*5 left/, 3000);
  await shot(page, 'order-list-cancelled');
  await close(page);
});

it('a sized room sale: the admitted person picks a size and a quantity, buys 2, then 1 more of another size', async () => {
  const saleId = createSale({
    name: 'Runner — sizes (waiting room)',
    variants: ['eu41:EU 41:4', 'eu42:EU 42:4'],
    maxPerCustomer: 3,
    startsIn: -10,
    room: { admitPerSecond: 50 },
  });
  const buyer = user('room-sized');
  const page = await openPage(`#/sales/${saleId}`);
  const orders = [];
  page.on('request', (r) => r.method() === 'POST' && r.url().endsWith(`/sales/${saleId}/purchases`) && orders.push(r.postDataJSON()));
  await page.gotoHash();
  await page.getByLabel('Your user id').fill(buyer);
  // Joining needs no size.
  await expectText(buyButton(page), /^Join the line$/);
  await expectDisabled(buyButton(page), false);
  await buyButton(page).click();
  await expectText(roomPanel(page), /It’s your turn! Buy within/, 15_000);
  await expectText(roomPanel(page), /Up to 3 items are set aside for you until/);
  await expectText(page.locator('#buy-reason'), /^Pick a size first\.$/);

  await sizeRadio(page, 'EU 42').check();
  await page.getByRole('button', { name: 'One more' }).click();
  await expectText(buyButton(page), /^Buy 2 · €258\.00$/);
  await expectDisabled(buyButton(page), false);
  await shot(page, 'room-sized-admitted');
  await buyButton(page).click();
  await expectText(status(page), /You got it! Your order is confirmed\.[\s\S]*EU 42 × 2\./);
  // One more is still set aside: Buy again, in another size.
  await expectText(roomPanel(page), /You hold 2 of 3: up to 1 more is set aside for you until/);
  await sizeRadio(page, 'EU 41').check();
  await page.getByLabel('Quantity').fill('1');
  await expectText(buyButton(page), /^Buy now · €129\.00$/);
  await buyButton(page).click();
  await expectText(status(page), /You got it! Your order is confirmed\.[\s\S]*EU 41\./);
  await expectText(roomPanel(page), /You have your items\s+You hold 3 of the 3 items allowed per customer; your place in line is used\./);
  await expectText(buyButton(page), /^Bought$/);
  assert.equal(await buyButton(page).isDisabled(), true);

  const { body: place } = await apiGet(`/sales/${saleId}/queue/${buyer}`);
  assert.deepEqual(orders, [
    { userId: buyer, admissionToken: place.admissionToken, variantId: 'eu42', quantity: 2 },
    { userId: buyer, admissionToken: place.admissionToken, variantId: 'eu41' },
  ]);
  assert.deepEqual(storedLiveOrders(saleId, buyer).map((o) => [o.variantId, o.quantity]).sort(), [['eu41', 1], ['eu42', 2]]);
  const stored = storedSale(saleId);
  assert.equal(variantOf(stored.sale, 'eu42').remainingStock, 2);
  assert.equal(variantOf(stored.sale, 'eu41').remainingStock, 3);
  await close(page);
});

it('the sale page fits a phone screen and every control is labelled', async () => {
  const page = await openPage('#/sales/demo', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.gotoHash();
  await expectText(page.locator('.sale .stock-text'), /left$/);
  await expectDisabled(buyButton(page), false);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  const box = await buyButton(page).boundingBox();
  assert.ok(box && box.height >= 44 && box.width >= 300, `Buy is ${JSON.stringify(box)}`);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, button, [role=progressbar]')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent?.trim()))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, []);
  assert.equal(await status(page).getAttribute('aria-live'), 'polite');
  await shot(page, 'sale-phone');
  await close(page);
});

it('the seeded sized sale fits a phone screen too, its sizes and stepper labelled and touch-sized', async () => {
  const { status: code, body: seeded } = await apiGet('/sales/sizes');
  assert.equal(code, 200);
  assert.deepEqual(seeded.variants.map((v) => v.label), ['EU 40', 'EU 41', 'EU 42', 'EU 43', 'EU 44']);
  assert.equal(seeded.maxPerCustomer, 2);
  const page = await openPage('#/sales/sizes', { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.gotoHash();
  await expectText(sizes(page), /EU 44/);
  await expectDisabled(page.getByRole('button', { name: 'One more' }), false);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  for (const control of [sizeRadio(page, 'EU 42'), page.getByRole('button', { name: 'One more' })]) {
    const box = await control.boundingBox();
    assert.ok(box && box.height >= 44 && box.width >= 44, `a control is ${JSON.stringify(box)}`);
  }
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, button, [role=progressbar]')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent?.trim()))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, []);
  await shot(page, 'sizes-phone');
  await close(page);
});

// `#/sales/{saleId}`: live stock, countdown, Buy and "Check my purchase".

import type { Api, Identity, SaleStatus } from './api';
import { getSavedUserId, getToken, saveUserId, setToken, tokenSubject } from './config';
import { h, setText } from './dom';
import {
  buyBlockedReason,
  clockOffset,
  countdownText,
  formatPrice,
  formatWindow,
  alreadyBought,
  busyMessage,
  lookupMessage,
  type Message,
  purchaseMessage,
  STATE_LABEL,
  stateAt,
} from './format';
import { isRetryable, pressBuy } from './retry';
import { stockBar, updateStockBar } from './stock';

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 15_000;

export function saleView(root: HTMLElement, api: Api, saleId: string): () => void {
  let sale: SaleStatus | undefined;
  let offset = 0;
  let buying = false;
  let checking = false;
  let retryAt = 0;
  /** While a press of Buy waits for its automatic retry: when it is sent again. */
  let autoRetryAt = 0;
  let stopped = false;
  let pollTimer = 0;
  let polling = false;

  const heading = h('h1', { tabindex: -1 }, 'Loading sale…');
  const badge = h('span', { class: 'badge', hidden: true });
  const price = h('p', { class: 'price' });
  const countdown = h('p', { class: 'countdown', id: 'countdown' });
  const window_ = h('p', { class: 'muted window' });
  const stock = stockBar('Items left');
  const connection = h('p', { class: 'connection', hidden: true }, 'Connection lost. Retrying…');

  const userId = h('input', {
    id: 'user-id',
    name: 'userId',
    autocomplete: 'username',
    autocapitalize: 'off',
    spellcheck: 'false',
    maxlength: 255,
    'aria-describedby': 'user-id-hint',
  });
  const userHint = h('p', { class: 'hint', id: 'user-id-hint' });
  const buy = h('button', { type: 'submit', class: 'primary', disabled: true, 'aria-describedby': 'buy-reason' }, 'Buy now');
  const check = h('button', { type: 'button', class: 'secondary', onclick: () => void checkPurchase() }, 'Check my purchase');
  const reason = h('p', { class: 'hint', id: 'buy-reason' });
  const result = h('div', { class: 'result', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });

  const token = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-hint' });
  const tokenHint = h('p', { class: 'hint', id: 'token-hint' });

  const form = h(
    'form',
    { class: 'buy', novalidate: true, onsubmit: (e: Event) => (e.preventDefault(), void purchase()) },
    h('div', { class: 'field' }, h('label', { for: 'user-id' }, 'Your user id'), userId, userHint),
    h('div', { class: 'actions' }, buy, check),
    reason,
  );
  const signIn = h(
    'details',
    { class: 'token' },
    h('summary', {}, 'Sign in with a token (JWT mode)'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Access token'), token, tokenHint),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => (setToken(token.value), showIdentity()) }, 'Save token'),
      h('button', { type: 'button', class: 'secondary', onclick: () => (setToken(''), showIdentity()) }, 'Forget token'),
    ),
  );

  const article = h(
    'article',
    { class: 'sale', 'aria-labelledby': 'sale-name' },
      badge,
      heading,
      price,
      countdown,
      window_,
      stock,
      connection,
      form,
    result,
    signIn,
  );
  root.replaceChildren(h('div', { class: 'narrow' }, h('p', { class: 'back' }, h('a', { href: '#/' }, '← All sales')), article));
  heading.id = 'sale-name';

  /** Who buys: the token's subject if there is a token, else the typed user id. */
  function showIdentity(): void {
    const t = getToken();
    const sub = t ? tokenSubject(t) : undefined;
    token.value = '';
    if (sub) {
      userId.value = sub;
      userId.readOnly = true;
      setText(userHint, `Signed in with a token as ${sub}.`);
    } else {
      userId.readOnly = false;
      if (!userId.value) userId.value = getSavedUserId();
      setText(userHint, t ? 'A token is saved; it is sent with every order.' : 'Stands in for signing in. One item per user id.');
    }
    setText(tokenHint, t ? 'A token is saved in this browser and sent as a Bearer token.' : 'Paste the token your sign-in gave you. It stays in this browser.');
  }

  function identity(): Identity | undefined {
    const who = { userId: userId.value, token: getToken() };
    if (!who.userId && !who.token) {
      show({ tone: 'error', title: 'Enter your user id first', detail: 'Orders and look-ups are made for one user id.' });
      userId.focus();
      return undefined;
    }
    saveUserId(who.userId);
    return who;
  }

  function show(msg: Message): void {
    const box = h(
      'div',
      { class: `message ${msg.tone}` },
      h('p', { class: 'title' }, msg.title),
      msg.orderId ? h('p', { class: 'order' }, 'Order id ', h('code', {}, msg.orderId)) : null,
      msg.detail ? h('p', {}, msg.detail) : null,
    );
    result.replaceChildren(box);
  }

  /** Redraws everything that depends on the clock or the last status. */
  function render(): void {
    if (!sale) return;
    const now = Date.now() + offset;
    const state = stateAt(sale, now);
    badge.hidden = false;
    article.dataset.state = state;
    badge.className = `badge ${state}`;
    setText(badge, STATE_LABEL[state]);
    setText(countdown, countdownText(sale, now));
    updateStockBar(stock, sale.remainingStock, sale.totalStock);
    const waitMs = retryAt - Date.now();
    const autoMs = autoRetryAt - Date.now();
    buy.disabled = buying || state !== 'active' || waitMs > 0;
    setText(
      buy,
      buying
        ? autoMs > 0
          ? `Trying again in ${Math.ceil(autoMs / 1000)} s`
          : 'Buying…'
        : waitMs > 0
          ? `Try again in ${Math.ceil(waitMs / 1000)} s`
          : `Buy now · ${formatPrice(sale.priceCents, sale.currency)}`,
    );
    setText(reason, buyBlockedReason(state));
    check.disabled = checking;
  }

  /** One status request at a time; each schedules the next. */
  async function poll(): Promise<void> {
    clearTimeout(pollTimer);
    if (polling) return;
    polling = true;
    const r = await api.sale(saleId);
    polling = false;
    if (stopped) return;
    if (r.ok) {
      const first = !sale;
      sale = r.value;
      offset = clockOffset(sale.serverTime, r.receivedAt, r.ageSeconds);
      connection.hidden = true;
      if (first) {
        setText(heading, sale.name);
        setText(price, formatPrice(sale.priceCents, sale.currency));
        setText(window_, formatWindow(sale.startsAt, sale.endsAt));
        document.title = `${sale.name} · Flash sale`;
      }
      render();
    } else if (r.kind === 'problem' && r.problem.code === 'sale_not_found') {
      notFound(root, saleId);
      return;
    } else {
      connection.hidden = false;
      setText(connection, r.kind === 'network' ? 'Connection lost. Retrying…' : 'The shop is busy. Retrying…');
    }
    // A tab in the background needs no live stock; it catches up when shown again.
    pollTimer = window.setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  /** Waits before an automatic retry, counting down in the status region; false if the page left. */
  async function waitToRetry(ms: number): Promise<boolean> {
    autoRetryAt = Date.now() + ms;
    let shown = Math.max(1, Math.ceil(ms / 1000));
    show(busyMessage(shown)); // even for a wait too short to count down
    render();
    while (!stopped) {
      const left = autoRetryAt - Date.now();
      if (left <= 0) break;
      const secs = Math.ceil(left / 1000);
      if (secs !== shown) {
        shown = secs;
        show(busyMessage(secs));
        render();
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, 250)));
    }
    autoRetryAt = 0;
    return !stopped;
  }

  async function purchase(): Promise<void> {
    if (buying || buy.disabled) return;
    const who = identity();
    if (!who) return;
    buying = true; // Set before the first await: a second click finds the button disabled.
    render();
    result.replaceChildren();
    // One press, one Idempotency-Key: the automatic retries after 429, 503 or no answer reuse it.
    const { result: r } = await pressBuy({ send: (key) => api.purchase(saleId, who, key), wait: waitToRetry });
    if (stopped) return;
    let message = purchaseMessage(r);
    if (!r.ok && r.kind === 'problem' && r.problem.code === 'sold_out' && who.userId) {
      // A server that already knows the sale is sold out answers without looking up this
      // shopper's order; ask, so an earlier buyer sees their order rather than "sold out".
      const mine = await api.lookup(saleId, who);
      if (mine.ok) message = alreadyBought(mine.value);
    }
    buying = false;
    if (stopped) return;
    if (isRetryable(r)) {
      // Still busy after the automatic retries: Buy stays off for a moment so nobody hammers.
      const secs = !r.ok && r.kind === 'problem' ? (r.problem.retryAfterSeconds ?? 1) : 1;
      retryAt = Date.now() + secs * 1000;
    }
    show(message);
    render();
    void poll(); // the stock just changed
  }

  async function checkPurchase(): Promise<void> {
    if (checking) return;
    const who = identity();
    if (!who) return;
    if (!who.userId) {
      show({ tone: 'error', title: 'Enter your user id first', detail: 'The look-up needs the user id.' });
      return;
    }
    checking = true;
    render();
    const r = await api.lookup(saleId, who);
    checking = false;
    if (stopped) return;
    show(lookupMessage(r, who.userId));
    render();
  }

  const onVisibility = () => {
    if (!document.hidden) void poll();
  };

  showIdentity();
  void poll();
  const tick = window.setInterval(render, 250);
  document.addEventListener('visibilitychange', onVisibility);
  return () => {
    stopped = true;
    clearTimeout(pollTimer);
    clearInterval(tick);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}

export function notFound(root: HTMLElement, saleId?: string): void {
  root.replaceChildren(
    h(
      'div',
      { class: 'narrow' },
      h('h1', { tabindex: -1 }, saleId ? 'This sale does not exist' : 'Page not found'),
      h('p', {}, saleId ? `There is no sale with the id “${saleId}”.` : 'Nothing lives at this address.'),
      h('p', {}, h('a', { href: '#/' }, 'See all sales')),
    ),
  );
  document.title = 'Not found · Flash sale';
}

// `#/sales/{saleId}`: live stock, countdown, Buy, "Check my purchase", and the shopper's order
// (reserved with a countdown and Cancel, confirmed, cancelled or expired). A sale with sizes adds a
// size picker, one that sells more than one per customer a quantity stepper, and both the list of
// the shopper's live orders.

import type { Api, Identity, OrderChoice, PlaceView, Purchase, Result, SaleStatus } from './api';
import {
  forgetJoinedRoom,
  getJoinedRoom,
  getSavedUserId,
  getToken,
  type JoinedRoom,
  saveJoinedRoom,
  saveUserId,
  setToken,
  tokenSubject,
} from './config';
import { h, setText } from './dom';
import {
  buyBlockedReason,
  clockOffset,
  countdownText,
  formatPrice,
  formatWindow,
  alreadyBought,
  busyMessage,
  holdingsMessage,
  type LabelOf,
  lookupMessage,
  type Message,
  purchaseMessage,
  STATE_LABEL,
  stateAt,
} from './format';
import { checkEntrantProof, drawCheckNote } from './draw';
import { drawPending, joinBusyMessage, joinFailureMessage, type RoomPanel, roomPanel, shouldAskPlace } from './room';
import {
  buyRule,
  cancelOutcome,
  holdsItem,
  lineCancelOutcome,
  orderLines,
  type OrderPanel,
  orderPanel,
  orderPollMs,
  showsOrderPanel,
} from './order';
import { isRetryable, MAX_AUTO_RETRIES, pressBuy, retryDelayMs } from './retry';
import { stockBar, updateStockBar } from './stock';
import {
  fromLookup,
  type Holdings,
  holdings,
  maxPerCustomer,
  mergeOrder,
  type Picker,
  quantityStepper,
  sellsSeveral,
  sizePicker,
  soldOutNote,
  type Stepper,
  step,
  variantLabel,
} from './variants';

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
  // The waiting room (sales whose status has `queue`).
  let joined: JoinedRoom | undefined = getJoinedRoom(saleId);
  let place: PlaceView | undefined;
  /** The check of this shopper's `entrantProof` (by proof id), once made. */
  let drawCheck: { id: string; ok: boolean } | undefined;
  let joining = false;
  let bought = false;
  let panel: RoomPanel | undefined;
  let placePolling = false;
  // When to ask for the own place (`shouldAskPlace`): the last ask, the admitted range it saw, when
  // this page saw the draw done, and this page's share of the spread.
  let lastPlacePoll = -Infinity;
  let admittedAtAsk = 0;
  let drawSeenAt: number | undefined;
  const jitter = Math.random();
  // The shopper's order, as last answered by the API; shown in the order panel on sales with holds.
  let order: Purchase | undefined;
  let orderView: OrderPanel | undefined;
  let cancelling = false;
  let orderTimer = 0;
  let orderPolling = false;
  // Sizes and quantities (a sale with `variants`, or more than one per customer).
  let selectedVariant: string | undefined;
  let quantity = 1;
  let picker: Picker | undefined;
  let stepper: Stepper | undefined;
  /** Sizes a `variant_sold_out` answer said are gone, until a status newer than that answer. */
  let soldOutSeen = new Set<string>();
  let soldOutSeenAt = 0;
  /** The shopper's live orders on such a sale (their `userId` says whose). */
  let mine: Holdings | undefined;
  /** The order whose own Cancel (in the order list) is on its way. */
  let cancellingLine: string | undefined;
  /** The order list's lines, by order id: drawn once, updated in place (a focused button stays). */
  const lineEls = new Map<string, { li: HTMLElement; item: HTMLElement; state: HTMLElement; button: HTMLButtonElement }>();
  const label: LabelOf = (id) => variantLabel(sale, id);

  const heading = h('h1', { tabindex: -1 }, 'Loading sale…');
  const badge = h('span', { class: 'badge', hidden: true });
  const price = h('p', { class: 'price' });
  const countdown = h('p', { class: 'countdown', id: 'countdown' });
  const window_ = h('p', { class: 'muted window' });
  const stock = stockBar('Items left');
  const connection = h('p', { class: 'connection', hidden: true }, 'Connection lost. Retrying…');

  const roomTitle = h('p', { class: 'room-title', id: 'room-title' });
  const roomDetail = h('p', { class: 'room-detail' });
  // A public draw: the shopper's own check that their place is in the published list.
  const roomCheck = h('p', { class: 'room-check', hidden: true });
  const roomBar = h('div', { class: 'bar', role: 'progressbar', 'aria-label': 'Your way through the line', 'aria-valuemin': 0 }, h('span', { class: 'fill' }));
  const roomBarText = h('p', { class: 'room-progress-text' });
  const roomProgress = h('div', { class: 'room-progress', hidden: true }, roomBar, roomBarText);
  // Announces a change of phase (joined, your turn, sold out…), not every tick of a count.
  const roomAnnounce = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
  const switchUser = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => leaveRoom() }, 'Use another user id');
  const roomBox = h(
    'section',
    { class: 'room', hidden: true, 'aria-labelledby': 'room-title' },
    roomTitle,
    roomProgress,
    roomDetail,
    roomCheck,
    roomAnnounce,
  );

  const userId = h('input', {
    id: 'user-id',
    name: 'userId',
    autocomplete: 'username',
    autocapitalize: 'off',
    spellcheck: 'false',
    maxlength: 255,
    'aria-describedby': 'user-id-hint',
    // The order shown is one user id's: typing another one puts it away.
    oninput: () => {
      if (order && order.userId !== userId.value) setOrder(undefined);
      if (mine && mine.orders[0]?.userId !== userId.value) setHoldings(undefined);
    },
  });
  const userHint = h('p', { class: 'hint', id: 'user-id-hint' });

  const sizeList = h('div', { class: 'size-options' });
  const sizeNote = h('p', { class: 'hint size-note', id: 'size-note', 'aria-live': 'polite' });
  const sizeBox = h(
    'fieldset',
    { class: 'sizes', hidden: true, 'aria-describedby': 'size-note' },
    h('legend', {}, 'Size'),
    sizeList,
    sizeNote,
  );
  const qtyInput = h('input', {
    id: 'quantity',
    type: 'number',
    inputmode: 'numeric',
    min: 1,
    value: 1,
    'aria-describedby': 'quantity-hint',
    oninput: () => setQuantity(Number(qtyInput.value)),
  });
  const fewer = h('button', { type: 'button', class: 'secondary step', 'aria-label': 'One fewer', onclick: () => stepper && setQuantity(step(stepper, -1)) }, '−');
  const more = h('button', { type: 'button', class: 'secondary step', 'aria-label': 'One more', onclick: () => stepper && setQuantity(step(stepper, 1)) }, '+');
  const qtyHint = h('p', { class: 'hint', id: 'quantity-hint' });
  const qtyBox = h(
    'div',
    { class: 'field quantity', hidden: true },
    h('label', { for: 'quantity' }, 'Quantity'),
    h('div', { class: 'stepper' }, fewer, qtyInput, more),
    qtyHint,
  );

  const ordersHeld = h('p', { class: 'orders-held' });
  const ordersList = h('ul', { class: 'orders-list' });
  // Focus lands here when the order whose Cancel had it leaves the list.
  const ordersTitle = h('h2', { id: 'orders-title', tabindex: -1 }, 'Your orders');
  const ordersBox = h(
    'section',
    { class: 'orders', hidden: true, 'aria-labelledby': 'orders-title' },
    ordersTitle,
    ordersHeld,
    ordersList,
  );
  const buy = h('button', { type: 'submit', class: 'primary', disabled: true, 'aria-describedby': 'buy-reason' }, 'Buy now');
  const check = h('button', { type: 'button', class: 'secondary', onclick: () => void checkPurchase() }, 'Check my purchase');
  const reason = h('p', { class: 'hint', id: 'buy-reason' });
  const result = h('div', { class: 'result', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });

  const orderTitle = h('p', { class: 'order-title', id: 'order-title' });
  const orderCode = h('code', {});
  const orderId = h('p', { class: 'order' }, 'Order id ', orderCode);
  const orderItem = h('p', { class: 'order-item', hidden: true });
  const orderDetail = h('p', { class: 'order-detail', id: 'order-detail' });
  const cancel = h(
    'button',
    { type: 'button', class: 'secondary', 'aria-describedby': 'order-detail', onclick: () => void cancelOrder() },
    'Cancel order',
  );
  const cancelRow = h('div', { class: 'actions' }, cancel);
  // Announces a change of phase (reserved, hold expired, confirmed…), not every tick of the clock.
  const orderAnnounce = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
  const orderBox = h(
    'section',
    { class: 'order-panel', hidden: true, 'aria-labelledby': 'order-title' },
    orderTitle,
    orderItem,
    orderId,
    orderDetail,
    cancelRow,
    orderAnnounce,
  );

  const token = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-hint' });
  const tokenHint = h('p', { class: 'hint', id: 'token-hint' });

  const form = h(
    'form',
    { class: 'buy', novalidate: true, onsubmit: (e: Event) => (e.preventDefault(), void (panel?.action === 'join' ? join() : purchase())) },
    sizeBox,
    qtyBox,
    h('div', { class: 'field' }, h('label', { for: 'user-id' }, 'Your user id'), userId, userHint),
    h('div', { class: 'actions' }, buy, check, switchUser),
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
      roomBox,
      form,
    result,
    orderBox,
    ordersBox,
    signIn,
  );
  root.replaceChildren(h('div', { class: 'narrow' }, h('p', { class: 'back' }, h('a', { href: '#/' }, '← All sales')), article));
  heading.id = 'sale-name';

  /** Who buys: the token's subject if there is a token, else the one in the room, else the typed id. */
  function showIdentity(): void {
    const t = getToken();
    const sub = t ? tokenSubject(t) : undefined;
    token.value = '';
    // A place belongs to one user id: a token for someone else means another shopper.
    if (joined && sub && joined.userId !== sub) dropPlace();
    switchUser.hidden = !joined || Boolean(sub);
    if (sub) {
      userId.value = sub;
      userId.readOnly = true;
      setText(userHint, `Signed in with a token as ${sub}.`);
    } else if (joined) {
      // The place, and the token it brings, belong to the user id that joined.
      userId.value = joined.userId;
      userId.readOnly = true;
      setText(userHint, `You are in line as ${joined.userId}.`);
    } else {
      userId.readOnly = false;
      if (!userId.value) userId.value = getSavedUserId();
      const limit = maxPerCustomer(sale);
      const per = limit > 1 ? `Up to ${limit} items per user id.` : 'One item per user id.';
      setText(userHint, t ? 'A token is saved; it is sent with every order.' : `Stands in for signing in. ${per}`);
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
    renderChoice();
    const total = formatPrice(sale.priceCents * quantity, sale.currency);
    const buyLabel = quantity > 1 ? `Buy ${quantity} · ${total}` : `Buy now · ${total}`;
    let allowed = state === 'active';
    let label = buyLabel;
    let why = buyBlockedReason(state);
    if (sale.queue) {
      // Several per customer: the admission buys until the shopper holds the limit, in parts too.
      const limit = maxPerCustomer(sale);
      const held = limit > 1 ? (mine?.held ?? 0) : 0;
      const done = limit > 1 ? held >= limit : bought;
      const next = roomPanel({
        room: sale.queue,
        saleState: state,
        place,
        joinedAs: joined?.userId,
        drawn: joined?.prequeue,
        bought: done,
        maxPerCustomer: limit,
        held,
        serverNow: now,
      });
      renderRoom(next);
      allowed = next.action !== 'none';
      label = next.action === 'buy' ? buyLabel : next.button;
      why = '';
      const t = Date.now();
      if (drawSeenAt === undefined && place?.position === null && !drawPending(sale.queue)) drawSeenAt = t;
      const ask = { room: sale.queue, place, now: t, lastAskAt: lastPlacePoll, admittedAtAsk, drawSeenAt, jitter };
      if (joined && !placePolling && shouldAskPlace(ask)) void pollPlace();
    }
    renderOrder(now);
    renderOrderLines(now);
    if (!sale.queue && orderView && state === 'active') {
      // A cancelled or expired order: buy again; a hold that ran out: once it is released.
      const rule = buyRule(orderView.phase);
      if (rule.again) label = `Buy again · ${total}`;
      if (rule.blocked) {
        allowed = false;
        why = rule.blocked;
      }
    }
    // A size is needed to buy, not to join the line.
    if (allowed && picker && !picker.selected && (!sale.queue || panel?.action === 'buy')) {
      allowed = false;
      why = 'Pick a size first.';
    }
    const busy = buying || joining;
    buy.disabled = busy || !allowed || waitMs > 0;
    setText(
      buy,
      busy
        ? autoMs > 0
          ? `Trying again in ${Math.ceil(autoMs / 1000)} s`
          : joining
            ? 'Joining…'
            : 'Buying…'
        : waitMs > 0
          ? `Try again in ${Math.ceil(waitMs / 1000)} s`
          : label,
    );
    setText(reason, why);
    check.disabled = checking;
  }

  /**
   * The size picker and the quantity stepper as the last status shows them: sold-out sizes off
   * (a chosen one is dropped, and the picker says so), the quantity within 1 and the sale's limit.
   */
  function renderChoice(): void {
    if (!sale) return;
    const next = sizePicker(sale.variants, selectedVariant, soldOutSeen);
    const note = soldOutNote(picker, next);
    picker = next;
    selectedVariant = next?.selected;
    if (note) setText(sizeNote, note);
    sizeBox.hidden = !next;
    if (next) renderSizes(next);
    const chosen = next?.options.find((o) => o.variantId === next.selected);
    const limit = maxPerCustomer(sale);
    const held = limit > 1 ? Math.min(mine?.held ?? 0, limit) : 0;
    stepper = quantityStepper(limit, next ? chosen?.remaining : sale.remainingStock, quantity, held);
    quantity = stepper.value;
    qtyBox.hidden = stepper.hidden;
    qtyInput.max = String(stepper.max);
    if (document.activeElement !== qtyInput && qtyInput.value !== String(quantity)) qtyInput.value = String(quantity);
    fewer.disabled = quantity <= 1;
    more.disabled = quantity >= stepper.max;
    const allowed = Math.max(1, limit - held);
    const short = stepper.max < allowed ? ` Only ${stepper.max} left${next ? ' in this size' : ''}.` : '';
    const holding = held > 0 && held < limit ? ` You hold ${held}, so ${allowed} more at most.` : '';
    setText(qtyHint, `Up to ${limit} per customer.${holding}${short}`);
  }

  /** One radio per size, made once; each status turns sold-out ones off. */
  function renderSizes(p: Picker): void {
    const ids = p.options.map((o) => o.variantId).join('\n');
    if (sizeList.dataset.ids !== ids) {
      sizeList.dataset.ids = ids;
      sizeList.replaceChildren(
        ...p.options.map((o, i) => {
          const input = h('input', {
            type: 'radio',
            name: 'variant',
            value: o.variantId,
            'aria-label': o.label,
            'aria-describedby': `size-${i}-stock`,
            onchange: () => chooseSize(o.variantId),
          });
          return h('label', { class: 'size' }, input, h('span', { class: 'size-label' }, o.label), h('span', { class: 'size-stock', id: `size-${i}-stock` }));
        }),
      );
    }
    p.options.forEach((o, i) => {
      const el = sizeList.children[i] as HTMLElement | undefined;
      const input = el?.querySelector('input');
      const stock = el?.querySelector('.size-stock');
      if (!el || !input || !stock) return;
      input.disabled = o.soldOut;
      input.checked = o.variantId === p.selected;
      el.dataset.soldOut = String(o.soldOut);
      setText(stock, o.text);
    });
  }

  function chooseSize(variantId: string): void {
    selectedVariant = variantId;
    setText(sizeNote, '');
    render();
  }

  function setQuantity(wanted: number): void {
    if (!Number.isFinite(wanted) || wanted < 1) return; // half-typed: the field keeps it until it leaves
    quantity = wanted;
    render();
  }

  /** The shopper's live orders on a sale with sizes or quantities: listed under the form. */
  function setHoldings(next: Holdings | undefined): void {
    mine = next;
    // What the customer may still buy bounds the stepper.
    renderChoice();
    const shown = mine !== undefined && sellsSeveral(sale) && (mine.orders.length > 0 || mine.held > 0);
    ordersBox.hidden = !shown;
    if (!shown || !mine) return;
    const limit = maxPerCustomer(sale);
    setText(ordersHeld, `You hold ${mine.held} of ${limit} ${limit === 1 ? 'item' : 'items'} allowed per customer.`);
    renderOrderLines(Date.now() + offset);
  }

  /**
   * The order list's lines on the server's clock: a reserved order of a sale with holds and several
   * per customer has its own Cancel. Lines are updated in place, so a focused button keeps focus;
   * when its order leaves the list, focus goes to the list's heading.
   */
  function renderOrderLines(now: number): void {
    if (!mine || ordersBox.hidden) return;
    const lines = orderLines(mine, now, label, { holdSeconds: sale?.holdSeconds, maxPerCustomer: maxPerCustomer(sale) });
    const els = lines.map((l) => {
      let el = lineEls.get(l.orderId);
      if (!el) {
        const id = l.orderId;
        const item = h('span', { class: 'order-item' });
        const state = h('span', { class: 'order-status' });
        const button = h('button', { type: 'button', class: 'secondary line-cancel', onclick: () => void cancelLine(id) }, 'Cancel');
        const li = h('li', { class: 'order-line', 'data-order-id': id }, item, ' · ', state, h('span', { class: 'order' }, ' · Order id ', h('code', {}, id)), button);
        el = { li, item, state, button };
        lineEls.set(id, el);
      }
      el.li.dataset.status = l.status;
      setText(el.item, l.item);
      setText(el.state, l.state);
      const busy = cancellingLine === l.orderId;
      el.button.hidden = !l.cancel;
      el.button.disabled = cancellingLine !== undefined || cancelling;
      el.button.setAttribute('aria-label', busy ? `Cancelling ${l.item}` : l.cancelLabel);
      setText(el.button, busy ? 'Cancelling…' : 'Cancel');
      return el;
    });
    const ids = new Set(lines.map((l) => l.orderId));
    for (const id of [...lineEls.keys()]) if (!ids.has(id)) lineEls.delete(id);
    const current = [...ordersList.children];
    if (current.length === els.length && current.every((c, i) => c === els[i]?.li)) return;
    const focused = document.activeElement;
    const hadFocus = focused instanceof HTMLElement && ordersList.contains(focused);
    ordersList.replaceChildren(...els.map((e) => e.li));
    if (hadFocus && ordersList.contains(focused)) focused.focus();
    else if (hadFocus) ordersTitle.focus();
  }

  /** One order's own Cancel: cancels that order (`?orderId=`), then the list comes from the look-up. */
  async function cancelLine(orderId: string): Promise<void> {
    if (!mine || cancelling || cancellingLine) return;
    const owner = mine.orders.find((o) => o.orderId === orderId)?.userId ?? userId.value;
    const who = { userId: owner, token: getToken() };
    cancellingLine = orderId; // Set before the first await: a second click finds the buttons disabled.
    render();
    const r = await api.cancel(saleId, who, orderId);
    cancellingLine = undefined;
    if (stopped) return;
    const outcome = lineCancelOutcome(r, label);
    if (outcome.order && mine) setHoldings(mergeOrder(mine.orders, outcome.order));
    // The order panel, when it shows this order, shows it as it is now.
    if (order?.orderId === orderId && (outcome.order || outcome.gone)) setOrder(outcome.order, outcome.message);
    else if (outcome.message) show(outcome.message);
    render();
    if (outcome.order || outcome.gone) void refreshHoldings(who);
    if (r.ok) void poll(); // the items are back on sale
  }

  /** Asks the API for this shopper's orders (all live ones from an API that lists them). */
  async function refreshHoldings(who: Identity): Promise<void> {
    const r = await api.lookup(saleId, who);
    if (stopped || userId.value !== who.userId) return;
    if (r.ok) setHoldings(fromLookup(mine?.orders ?? [], r.value));
    else if (r.kind === 'problem' && r.problem.code === 'purchase_not_found') setHoldings(holdings([]));
  }

  /** The order panel, on the server's clock; a change of phase is announced unless `quiet`. */
  function renderOrder(now: number, quiet = false): void {
    const shown = order && showsOrderPanel(order, sale?.holdSeconds) ? orderPanel(order, now, label) : undefined;
    const changed = shown?.phase !== orderView?.phase || shown?.orderId !== orderView?.orderId;
    orderView = shown;
    orderBox.hidden = !shown;
    if (!shown) {
      if (changed) clearTimeout(orderTimer);
      return;
    }
    orderBox.dataset.phase = shown.phase;
    orderBox.dataset.tone = shown.tone;
    setText(orderTitle, shown.title);
    setText(orderCode, shown.orderId);
    orderItem.hidden = !shown.item;
    setText(orderItem, shown.item);
    setText(orderDetail, shown.detail);
    cancelRow.hidden = !shown.cancel;
    cancel.disabled = cancelling;
    setText(cancel, cancelling ? 'Cancelling…' : 'Cancel order');
    if (changed) {
      if (!quiet) {
        // The outcome message above was about the order as it was; the panel tells what it is now.
        result.replaceChildren();
        setText(orderAnnounce, shown.title);
      }
      scheduleOrderPoll();
    }
  }

  /**
   * The shopper's order as the API just answered it. `message` goes to the status region and
   * speaks for the change; without one, the panel announces its new phase.
   */
  function setOrder(next: Purchase | undefined, message?: Message): void {
    order = next;
    if (sale?.queue && next) bought = holdsItem(next);
    const panel = next !== undefined && showsOrderPanel(next, sale?.holdSeconds);
    if (message) show(panel ? { ...message, orderId: undefined } : message);
    // Drawn again even when the phase is the same: a look-up the shopper asked for is answered.
    if (!message && panel) orderView = undefined;
    renderOrder(Date.now() + offset, message !== undefined);
    scheduleOrderPoll();
    render();
  }

  /** The next look at the order while it can change by itself (payment, or release of the hold). */
  function scheduleOrderPoll(): void {
    clearTimeout(orderTimer);
    const ms = orderView ? orderPollMs(orderView.phase) : undefined;
    if (ms === undefined || stopped) return;
    orderTimer = window.setTimeout(() => void refreshOrder(), document.hidden ? Math.max(ms, HIDDEN_POLL_MS) : ms);
  }

  /** Looks the shown order up again; quiet unless its phase changed. */
  async function refreshOrder(): Promise<void> {
    clearTimeout(orderTimer);
    if (!order || orderPolling || cancelling || stopped) return;
    const asked = order;
    orderPolling = true;
    const r = await api.lookup(saleId, { userId: asked.userId, token: getToken() });
    orderPolling = false;
    if (stopped || order !== asked) return; // an action answered meanwhile
    if (r.ok) {
      order = r.value;
      if (sale?.queue) bought = holdsItem(r.value);
      if (sellsSeveral(sale)) setHoldings(fromLookup(mine?.orders ?? [], r.value));
      render();
    } else if (r.kind === 'problem' && r.problem.code === 'purchase_not_found') {
      order = undefined;
      render();
    }
    scheduleOrderPoll();
  }

  /** On a sale with holds, a shopper coming back finds their order without asking. */
  async function findOrder(): Promise<void> {
    const who = { userId: userId.value, token: getToken() };
    const several = sellsSeveral(sale);
    if (!who.userId || order || (!sale?.holdSeconds && !several)) return;
    const r = await api.lookup(saleId, who);
    if (stopped || order || !r.ok || r.value.userId !== userId.value) return;
    if (several) setHoldings(fromLookup(mine?.orders ?? [], r.value));
    if (sale?.holdSeconds) setOrder(r.value);
  }

  async function cancelOrder(): Promise<void> {
    if (!order || cancelling || cancellingLine) return;
    const who = { userId: order.userId, token: getToken() };
    cancelling = true; // Set before the first await: a second click finds the button disabled.
    clearTimeout(orderTimer);
    render();
    // Several orders per customer: the one the panel shows, not whichever is latest by then.
    const r = await api.cancel(saleId, who, maxPerCustomer(sale) > 1 ? order.orderId : undefined);
    cancelling = false;
    if (stopped) return;
    const outcome = cancelOutcome(r);
    if (outcome.order && mine) setHoldings(mergeOrder(mine.orders, outcome.order));
    if (outcome.order) setOrder(outcome.order, outcome.message);
    else if (outcome.gone) setOrder(undefined, outcome.message);
    else {
      if (outcome.message) show(outcome.message);
      render();
      scheduleOrderPoll();
    }
    if (r.ok) void poll(); // the item is back on sale
  }

  /** The room panel: where this shopper's place stands, or why there is no room to wait in. */
  function renderRoom(next: RoomPanel): void {
    const changed = next.phase !== panel?.phase;
    panel = next;
    roomBox.hidden = false;
    roomBox.dataset.phase = next.phase;
    setText(roomTitle, next.title);
    setText(roomDetail, next.detail);
    const check = place?.entrantProof && drawCheck?.id === place.entrantProof.id ? drawCheck : undefined;
    roomCheck.hidden = !check;
    if (check) {
      roomCheck.dataset.ok = String(check.ok);
      setText(roomCheck, drawCheckNote(check.ok, sale?.queue?.entrantCount));
    }
    roomProgress.hidden = !next.progress;
    if (next.progress) {
      const { value, max, text } = next.progress;
      roomBar.setAttribute('aria-valuemax', String(max));
      roomBar.setAttribute('aria-valuenow', String(value));
      roomBar.setAttribute('aria-valuetext', text);
      roomBar.querySelector<HTMLElement>('.fill')!.style.width = `${((max > 0 ? value / max : 1) * 100).toFixed(1)}%`;
      setText(roomBarText, text);
    }
    if (changed) {
      // News for this shopper (a place, your turn, sold out…); the offer to join is plain to see.
      if (!['join', 'not_open', 'finding'].includes(next.phase)) setText(roomAnnounce, next.title);
    }
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
      // A status newer than a `variant_sold_out` answer knows better.
      if (soldOutSeen.size > 0 && Date.parse(sale.serverTime) > soldOutSeenAt) soldOutSeen = new Set();
      offset = clockOffset(sale.serverTime, r.receivedAt, r.ageSeconds);
      connection.hidden = true;
      if (first) {
        setText(heading, sale.name);
        setText(price, formatPrice(sale.priceCents, sale.currency));
        setText(window_, formatWindow(sale.startsAt, sale.endsAt));
        document.title = `${sale.name} · Flash sale`;
        if (!joined && !getToken()) showIdentity(); // the hint names the sale's limit
        if (joined && sale.queue) void pollPlace();
        else if (joined) {
          dropPlace(); // no waiting room (any more) for this sale
          showIdentity();
        }
        void findOrder();
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
  async function waitToRetry(ms: number, message: (secondsLeft: number) => Message = busyMessage): Promise<boolean> {
    autoRetryAt = Date.now() + ms;
    let shown = Math.max(1, Math.ceil(ms / 1000));
    show(message(shown)); // even for a wait too short to count down
    render();
    while (!stopped) {
      const left = autoRetryAt - Date.now();
      if (left <= 0) break;
      const secs = Math.ceil(left / 1000);
      if (secs !== shown) {
        shown = secs;
        show(message(secs));
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
    // A sale with a waiting room takes the admission token the room handed out.
    const admission = sale?.queue ? place?.admissionToken : undefined;
    // What this press orders: the size and quantity chosen now, for every retry of it.
    const choice: OrderChoice = { variantId: picker?.selected, quantity };
    const limit = maxPerCustomer(sale);
    const several = sellsSeveral(sale);
    buying = true; // Set before the first await: a second click finds the button disabled.
    render();
    result.replaceChildren();
    // One press, one Idempotency-Key: the automatic retries after 429, 503 or no answer reuse it.
    const { result: r } = await pressBuy({
      send: (key) => api.purchase(saleId, who, key, admission, choice),
      wait: (ms) => waitToRetry(ms),
    });
    if (stopped) return;
    const code = !r.ok && r.kind === 'problem' ? r.problem.code : undefined;
    let message = purchaseMessage(r, { label, variantId: choice.variantId, quantity: choice.quantity, maxPerCustomer: limit });
    let itsMine = r.ok || code === 'already_purchased';
    let placed = r.ok ? r.value : !r.ok && r.kind === 'problem' ? r.problem.purchase : undefined;
    if (code === 'sold_out' && who.userId && limit <= 1) {
      // A server that already knows the sale is sold out answers without looking up this
      // shopper's order; ask, so an earlier buyer sees their order rather than "sold out".
      const found = await api.lookup(saleId, who);
      if (found.ok && holdsItem(found.value)) {
        message = alreadyBought(found.value, label);
        itsMine = true;
      }
      if (found.ok) placed = found.value;
    }
    buying = false;
    if (stopped) return;
    if (several && !r.ok && r.kind === 'problem') {
      const p = r.problem;
      if (code === 'limit_reached' && p.orders) {
        setHoldings(holdings(p.orders, p.held));
        placed = p.orders[0];
      } else if (code === 'variant_sold_out') {
        // Off in the picker until a newer status: the size ordered, and every one not listed.
        const gone = (sale?.variants ?? []).map((v) => v.variantId).filter((id) => id === choice.variantId || (p.available && !p.available.includes(id)));
        soldOutSeen = new Set([...soldOutSeen, ...gone]);
        soldOutSeenAt = Date.now() + offset;
      }
    }
    if (several && r.ok) setHoldings(mergeOrder(mine?.orders ?? [], r.value));
    // Every live order of this shopper (others may have been placed elsewhere).
    if (several && who.userId && (r.ok || ['already_purchased', 'limit_reached', 'idempotency_key_reused', 'sold_out'].includes(code ?? ''))) {
      void refreshHoldings(who);
    }
    if (sale?.queue) {
      if (itsMine) bought = true;
      // Not admitted after all, or the token is no longer good: ask the room where our place stands.
      else if (!r.ok && r.kind === 'problem' && r.problem.code.startsWith('admission_')) void pollPlace();
      else if (!r.ok && r.kind === 'problem' && r.problem.code === 'not_yet_admitted') void pollPlace();
    }
    if (isRetryable(r)) {
      // Still busy after the automatic retries: Buy stays off for a moment so nobody hammers.
      const secs = !r.ok && r.kind === 'problem' ? (r.problem.retryAfterSeconds ?? 1) : 1;
      retryAt = Date.now() + secs * 1000;
    }
    if (placed) setOrder(placed, message);
    else show(message);
    render();
    void poll(); // the stock just changed
  }

  /** Joins the room (idempotent: a retry or a second join gets the same place). */
  async function join(): Promise<void> {
    if (joining || buy.disabled) return;
    const who = identity();
    if (!who) return;
    if (!who.userId) {
      show({ tone: 'error', title: 'Enter your user id first', detail: 'Your place in line is kept for one user id.' });
      userId.focus();
      return;
    }
    joining = true; // Set before the first await, like Buy.
    render();
    result.replaceChildren();
    let r: Result<PlaceView>;
    for (let attempt = 0; ; attempt++) {
      r = await api.joinRoom(saleId, who);
      if (stopped) return;
      if (!isRetryable(r) || attempt >= MAX_AUTO_RETRIES) break;
      const delay = retryDelayMs(attempt, !r.ok && r.kind === 'problem' ? r.problem.retryAfterSeconds : undefined);
      if (delay === undefined || !(await waitToRetry(delay, joinBusyMessage))) break;
    }
    joining = false;
    if (stopped) return;
    if (r.ok) {
      result.replaceChildren();
      place = r.value;
      checkDraw(place);
      // Joined before the start: the place comes from the draw.
      const beforeStart = sale !== undefined && Date.now() + offset < Date.parse(sale.startsAt);
      joined = { userId: who.userId, prequeue: r.value.position === null && beforeStart };
      saveJoinedRoom(saleId, joined);
      lastPlacePoll = Date.now();
      admittedAtAsk = sale?.queue?.admittedThrough ?? 0;
      showIdentity();
    } else {
      show(joinFailureMessage(r));
      if (isRetryable(r)) retryAt = Date.now() + (r.kind === 'problem' ? (r.problem.retryAfterSeconds ?? 1) : 1) * 1000;
    }
    render();
  }

  /**
   * Asks where this shopper stands; the only answer that carries the admission token. Asked when
   * `shouldAskPlace` says so (checked at each render), not on a timer of its own.
   */
  async function pollPlace(): Promise<void> {
    if (!joined || placePolling || stopped) return;
    const who = { userId: joined.userId, token: getToken() };
    placePolling = true;
    lastPlacePoll = Date.now();
    admittedAtAsk = sale?.queue?.admittedThrough ?? 0;
    const r = await api.place(saleId, who);
    placePolling = false;
    if (stopped || joined?.userId !== who.userId) return;
    if (r.ok) {
      place = r.value;
      checkDraw(place);
    } else if (r.kind === 'problem' && (r.problem.code === 'not_in_line' || r.problem.code === 'no_waiting_room')) {
      // The room no longer knows this place (a reset sale): offer to join again.
      dropPlace();
      showIdentity();
    }
    render();
  }

  /**
   * A public draw's place carries its proof: checked once, here in the browser, against the root
   * and size the sale status publishes; the panel then says what the check found.
   */
  function checkDraw(p: PlaceView): void {
    const proof = p.entrantProof;
    const root = sale?.queue?.entrantsRoot;
    const count = sale?.queue?.entrantCount;
    if (!proof || !root || count == null || drawCheck?.id === proof.id) return;
    drawCheck = { id: proof.id, ok: false };
    void checkEntrantProof(p.userId, proof, root, count).then((ok) => {
      if (stopped || drawCheck?.id !== proof.id) return;
      drawCheck = { id: proof.id, ok };
      render();
    });
  }

  /** Forgets this browser's place (the server keeps it: joining again as that user gets it back). */
  function dropPlace(): void {
    if (joined) forgetJoinedRoom(saleId);
    joined = undefined;
    place = undefined;
    drawCheck = undefined;
    drawSeenAt = undefined;
    bought = false;
    userId.readOnly = false;
  }

  /** "Use another user id": lets this browser join as someone else. */
  function leaveRoom(): void {
    dropPlace();
    userId.value = '';
    showIdentity();
    result.replaceChildren();
    render();
    userId.focus();
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
    // A sale with sizes or quantities: every live order, and how many items they hold.
    const held = r.ok && sellsSeveral(sale) ? fromLookup(mine?.orders ?? [], r.value) : undefined;
    if (held) setHoldings(held);
    if (r.ok && held && held.orders.length > 0) {
      const message = holdingsMessage(held, maxPerCustomer(sale), label);
      if (showsOrderPanel(r.value, sale?.holdSeconds)) setOrder(r.value, message);
      else {
        order = r.value;
        show(message);
      }
    } else if (r.ok && showsOrderPanel(r.value, sale?.holdSeconds)) {
      setOrder(r.value); // the order panel tells it
    } else {
      if (r.ok) order = r.value;
      else if (r.kind === 'problem' && r.problem.code === 'purchase_not_found') {
        order = undefined;
        if (mine) setHoldings(holdings([]));
      }
      show(lookupMessage(r, who.userId, label));
    }
    render();
  }

  const onVisibility = () => {
    if (document.hidden) return;
    void poll();
    if (orderView && orderPollMs(orderView.phase) !== undefined) void refreshOrder();
  };

  showIdentity();
  void poll();
  const tick = window.setInterval(render, 250);
  document.addEventListener('visibilitychange', onVisibility);
  return () => {
    stopped = true;
    clearTimeout(pollTimer);
    clearTimeout(orderTimer);
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

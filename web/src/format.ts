// Pure presentation rules: prices, clocks, sale states and the message for every API outcome.

import type { Problem, Purchase, Result, SaleState, SaleStatus } from './api';
import { type Holdings, orderItemText } from './variants';

export function formatPrice(priceCents: number, currency: string, locale?: string): string {
  try {
    const fmt = new Intl.NumberFormat(locale, { style: 'currency', currency });
    // priceCents is in the currency's minor unit: 2 digits for EUR, 0 for JPY.
    const digits = fmt.resolvedOptions().maximumFractionDigits ?? 2;
    return fmt.format(priceCents / 10 ** digits);
  } catch {
    return `${(priceCents / 100).toFixed(2)} ${currency}`;
  }
}

const DATE_TIME: Intl.DateTimeFormatOptions = {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: 'numeric',
  minute: '2-digit',
  timeZoneName: 'short',
};

/** A moment in the shopper's time zone, named: `Nov 21, 2026, 6:44:13 AM UTC`. */
export function formatTime(iso: string, locale?: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(locale, { ...DATE_TIME, second: '2-digit' }).format(date);
}

/** A sale window, the date said once when both ends share it: `Nov 21, 2026, 6:40 – 7:40 AM UTC`. */
export function formatWindow(startIso: string, endIso: string, locale?: string): string {
  const [start, end] = [new Date(startIso), new Date(endIso)];
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return `${startIso} – ${endIso}`;
  return new Intl.DateTimeFormat(locale, DATE_TIME).formatRange(start, end);
}

/** `1d 02:03:04`, `02:03:04` or `03:04`; never negative. Rounds up, so 0.2 s left shows `00:01`. */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(s / 86_400);
  s -= days * 86_400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = h > 0 || days > 0 ? `${pad(h)}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
  return days > 0 ? `${days}d ${clock}` : clock;
}

/**
 * The server's clock minus ours, measured when a response arrived. Adding it to `Date.now()`
 * gives the server's time, so countdowns do not depend on a wrong clock on the shopper's device.
 */
export function clockOffset(serverTime: string, receivedAt: number, ageSeconds = 0): number {
  const server = Date.parse(serverTime);
  return Number.isNaN(server) ? 0 : server + ageSeconds * 1000 - receivedAt;
}

/** The sale's state at `serverNow`: the window decides, the last known stock decides sold out. */
export function stateAt(sale: SaleStatus, serverNow: number): SaleState {
  if (serverNow < Date.parse(sale.startsAt)) return 'upcoming';
  if (serverNow >= Date.parse(sale.endsAt)) return 'ended';
  return sale.remainingStock > 0 ? 'active' : 'sold_out';
}

export const STATE_LABEL: Record<SaleState, string> = {
  upcoming: 'Coming soon',
  active: 'On sale now',
  sold_out: 'Sold out',
  ended: 'Ended',
};

/** The line under the price: a countdown, or why there is none. */
export function countdownText(sale: SaleStatus, serverNow: number): string {
  switch (stateAt(sale, serverNow)) {
    case 'upcoming':
      return `Starts in ${formatDuration(Date.parse(sale.startsAt) - serverNow)}`;
    case 'active':
    case 'sold_out':
      return `Ends in ${formatDuration(Date.parse(sale.endsAt) - serverNow)}`;
    case 'ended':
      return 'This sale has ended';
  }
}

/** Why the Buy button is disabled, or '' when it is not. */
export function buyBlockedReason(state: SaleState): string {
  switch (state) {
    case 'upcoming':
      return 'The Buy button unlocks when the countdown ends.';
    case 'sold_out':
      return 'Every item has been sold.';
    case 'ended':
      return 'This sale is over.';
    case 'active':
      return '';
  }
}

export type Tone = 'success' | 'info' | 'warning' | 'error';

export interface Message {
  tone: Tone;
  title: string;
  detail: string;
  /** The order id to show prominently, when there is one. */
  orderId?: string;
}

/** Names a variant by its id: the sale's label for it (the id itself when the page knows none). */
export type LabelOf = (variantId: string) => string;
const byId: LabelOf = (id) => id;

function bought(title: string, p: Purchase, tone: Tone, label: LabelOf = byId): Message {
  const item = orderItemText(p, label);
  const by = `Bought by ${p.userId} on ${formatTime(p.purchasedAt)}.`;
  return { tone, title, detail: item ? `${item}. ${by}` : by, orderId: p.orderId };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const NOT_CONFIRMED = 'Your order is not confirmed.';

/** Messages for failures that any call can meet. */
export function failureMessage(failure: Exclude<Result<unknown>, { ok: true }>): Message {
  if (failure.kind === 'network') {
    return failure.timedOut
      ? { tone: 'error', title: 'No answer from the shop', detail: 'The request timed out. Use “Check my purchase” to see whether it went through.' }
      : { tone: 'error', title: 'Could not reach the shop', detail: 'Check your connection and try again.' };
  }
  const p: Problem = failure.problem;
  switch (p.code) {
    case 'temporarily_unavailable':
    case 'too_many_requests': {
      const secs = p.retryAfterSeconds ?? 1;
      return { tone: 'warning', title: 'The shop is very busy', detail: `Try again in ${secs} ${secs === 1 ? 'second' : 'seconds'}.` };
    }
    case 'invalid_request':
      return { tone: 'error', title: 'Please check your details', detail: p.detail ?? 'The request was not valid.' };
    case 'sale_not_found':
      return { tone: 'error', title: 'This sale does not exist', detail: 'Check the link or pick a sale from the list.' };
    case 'unauthorized':
      return { tone: 'error', title: 'Please sign in', detail: 'Add your access token under “Sign in with a token”.' };
    case 'forbidden':
      return { tone: 'error', title: 'Not allowed', detail: p.detail ?? 'You may only act as yourself.' };
    case 'payload_too_large':
      return { tone: 'error', title: 'Request too large', detail: 'The user id is too long.' };
    default:
      return { tone: 'error', title: 'Something went wrong', detail: `The shop answered ${p.status} (${p.code}). Please try again.` };
  }
}

const ALREADY_BOUGHT = 'You already bought this item. It is one per person.';

/** The shopper's existing order, shown instead of a refusal. */
export function alreadyBought(purchase: Purchase, label?: LabelOf): Message {
  return bought(ALREADY_BOUGHT, purchase, 'info', label);
}

/** What a press of Buy ordered, for the words of its answer (a sale with sizes or quantities). */
export interface OrderContext {
  /** The sale's label for a variant. */
  label?: LabelOf;
  /** The size ordered. */
  variantId?: string;
  /** Items ordered (absent: 1). */
  quantity?: number;
  /** The sale's limit per customer, when the answer does not say. */
  maxPerCustomer?: number;
}

/** What to tell the shopper after pressing Buy. */
export function purchaseMessage(result: Result<Purchase>, ctx: OrderContext = {}): Message {
  const label = ctx.label ?? byId;
  if (result.ok) {
    const title = result.value.status === 'reserved' ? 'You got it! The item is reserved for you.' : 'You got it! Your order is confirmed.';
    return bought(title, result.value, 'success', label);
  }
  if (result.kind === 'network') return { ...failureMessage(result), detail: `${NOT_CONFIRMED} ${failureMessage(result).detail}` };
  const p = result.problem;
  switch (p.code) {
    case 'already_purchased':
      return p.purchase ? alreadyBought(p.purchase) : { tone: 'info', title: ALREADY_BOUGHT, detail: '' };
    case 'sold_out':
      return { tone: 'warning', title: 'Sold out', detail: 'Every item was sold before your order arrived.' };
    case 'variant_sold_out': {
      const size = ctx.variantId ? label(ctx.variantId) : 'This size';
      const others = (p.available ?? []).filter((id) => id !== ctx.variantId).map(label);
      return {
        tone: 'warning',
        title: `${size} just sold out`,
        detail: `${NOT_CONFIRMED} ${others.length > 0 ? `Still in stock: ${others.join(', ')}.` : 'No other size is left either.'}`,
      };
    }
    case 'not_enough_stock': {
      const left = p.remaining ?? 0;
      const asked = ctx.quantity ?? 1;
      const size = ctx.variantId ? ` in ${label(ctx.variantId)}` : '';
      return {
        tone: 'warning',
        title: `Only ${left} left${size}`,
        detail: `${NOT_CONFIRMED} You asked for ${asked}: choose ${left > 1 ? `up to ${left}` : '1'}${size ? ', or another size' : ''}.`,
      };
    }
    case 'limit_reached': {
      const held = p.held ?? 0;
      const max = p.maxPerCustomer ?? ctx.maxPerCustomer;
      const more = max === undefined ? undefined : Math.max(0, max - held);
      const rule = max === undefined ? 'This sale has a limit per customer' : `This sale allows ${max} per customer`;
      return {
        tone: 'info',
        title: `Limit reached: you already hold ${plural(held, 'item')}`,
        detail: `${NOT_CONFIRMED} ${rule}${more === undefined ? '.' : more > 0 ? `, so you can buy ${more} more.` : ', so you cannot buy more.'}`,
      };
    }
    case 'quantity_invalid': {
      const max = p.maxPerCustomer ?? ctx.maxPerCustomer;
      return {
        tone: 'error',
        title: 'That quantity is not allowed',
        detail: `${NOT_CONFIRMED} ${max === undefined ? 'Choose a smaller quantity.' : max > 1 ? `Choose 1 to ${max}.` : 'This sale sells one per customer.'}`,
      };
    }
    case 'variant_unknown':
      return {
        tone: 'error',
        title: 'Please pick a size',
        detail: `${NOT_CONFIRMED} ${ctx.variantId ? 'That size is not sold in this sale: choose one of the sizes shown.' : 'This sale comes in several sizes: choose one.'}`,
      };
    case 'idempotency_key_reused':
      return {
        tone: 'warning',
        title: 'This order was already placed with another size or quantity',
        detail: `Nothing new was ordered. Press Buy again to place a new order.`,
        orderId: p.purchase?.orderId,
      };
    case 'sale_not_started':
      return {
        tone: 'info',
        title: 'The sale has not started yet',
        detail: p.startsAt ? `It opens on ${formatTime(p.startsAt)}.` : 'Wait for the countdown to end.',
      };
    case 'sale_ended':
      return { tone: 'warning', title: 'The sale has ended', detail: 'Orders are no longer accepted.' };
    case 'admission_required':
      return { tone: 'info', title: 'Join the line first', detail: 'This sale has a waiting room: join the line and buy when it is your turn.' };
    case 'admission_invalid':
      return /expired/i.test(p.detail ?? '')
        ? { tone: 'warning', title: 'Your admission expired', detail: `${NOT_CONFIRMED} A place in line is one per person.` }
        : { tone: 'error', title: 'Your admission is not valid here', detail: `${NOT_CONFIRMED} It belongs to another sale or user id.` };
    case 'not_yet_admitted':
      return { tone: 'info', title: 'It is not your turn yet', detail: `${NOT_CONFIRMED} Keep this page open: Buy unlocks when you are admitted.` };
    case 'temporarily_unavailable':
    case 'too_many_requests':
      return { ...failureMessage(result), detail: `${NOT_CONFIRMED} ${failureMessage(result).detail}` };
    default:
      return failureMessage(result);
  }
}

/** While a press of Buy waits to be sent again by itself. */
export function busyMessage(secondsLeft: number): Message {
  return {
    tone: 'warning',
    title: `Busy — trying again in ${Math.max(1, Math.ceil(secondsLeft))} s`,
    detail: 'The shop is very busy. Your order is not confirmed yet; keep this page open.',
  };
}

/** What to tell the shopper after “Check my purchase”. */
export function lookupMessage(result: Result<Purchase>, userId: string, label?: LabelOf): Message {
  if (result.ok) {
    switch (result.value.status) {
      case 'reserved':
        return bought('The item is reserved for you.', result.value, 'info', label);
      case 'cancelled':
        return bought('You cancelled this order.', result.value, 'info', label);
      case 'expired':
        return bought('Your hold on this item expired.', result.value, 'warning', label);
      default:
        return bought('You have this item.', result.value, 'success', label);
    }
  }
  if (result.kind === 'problem' && result.problem.code === 'purchase_not_found') {
    return { tone: 'info', title: 'No purchase found', detail: `${userId} has not bought this item.` };
  }
  if (result.kind === 'problem' && result.problem.code === 'forbidden') {
    return { tone: 'error', title: 'Not allowed', detail: 'You can only check your own purchase.' };
  }
  return failureMessage(result);
}

/**
 * “Check my purchase” on a sale with sizes or quantities, while the shopper holds something: how
 * much, of what limit (the orders themselves are listed under it).
 */
export function holdingsMessage(h: Holdings, maxPerCustomer: number, label: LabelOf = byId): Message {
  const items = h.orders.map((o) => orderItemText(o, label) || '1 item');
  return {
    tone: 'success',
    title: `You hold ${h.held} of ${plural(maxPerCustomer, 'item')} allowed per customer`,
    detail: `${plural(h.orders.length, 'order')}: ${items.join('; ')}.`,
  };
}

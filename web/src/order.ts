// Pure rules of the shopper's order on the sale page: where it stands on the server's clock, what
// the order panel says, when Cancel shows, what Buy does meanwhile, and when to look it up again.

import type { OrderStatus, Purchase, Result } from './api';
import { failureMessage, formatTime, type LabelOf, type Message, type Tone } from './format';
import { type Holdings, orderItemText } from './variants';

/** Where an order stands as the page shows it: its status, and for a reserved one, the clock. */
export type OrderPhase =
  | 'reserved' // holds the item, payment pending: counts down, Cancel
  | 'hold_ended' // still reserved on the server, but its hold ran out: released within a minute
  | 'confirmed' // final
  | 'cancelled' // given back by the buyer
  | 'expired'; // released after the hold ran out

const STATUSES: readonly OrderStatus[] = ['reserved', 'confirmed', 'cancelled', 'expired'];

/** The order's status; one the page does not know is taken as final, like a record without one. */
export function orderStatus(order: Purchase): OrderStatus {
  return STATUSES.includes(order.status) ? order.status : 'confirmed';
}

/** Whether the order holds an item (so buying again answers `already_purchased`). */
export function holdsItem(order: Purchase): boolean {
  const s = orderStatus(order);
  return s === 'reserved' || s === 'confirmed';
}

/** Milliseconds left of a hold on the server's clock; 0 once it ended, undefined if unknown. */
export function holdLeftMs(order: Purchase, serverNow: number): number | undefined {
  const end = order.holdExpiresAt ? Date.parse(order.holdExpiresAt) : Number.NaN;
  return Number.isNaN(end) ? undefined : Math.max(0, end - serverNow);
}

export function orderPhase(order: Purchase, serverNow: number): OrderPhase {
  const status = orderStatus(order);
  if (status !== 'reserved') return status;
  return holdLeftMs(order, serverNow) === 0 ? 'hold_ended' : 'reserved';
}

/**
 * `1:59`, `0:05`, `1:00:00`: the hold's countdown as minutes and seconds (hours only for long
 * holds). Rounds up, so a hold shows `0:00` only once it has ended.
 */
export function formatHoldClock(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** What the order panel shows. */
export interface OrderPanel {
  phase: OrderPhase;
  tone: Tone;
  title: string;
  detail: string;
  orderId: string;
  /** What the order holds (`EU 42 × 2`); '' for a plain one-item order. */
  item: string;
  /** Whether the Cancel button shows. */
  cancel: boolean;
}

/** The order panel for `order` at `serverNow`; `label` names its variant. */
export function orderPanel(order: Purchase, serverNow: number, label: LabelOf = (id) => id): OrderPanel {
  const phase = orderPhase(order, serverNow);
  const base = { phase, orderId: order.orderId, item: orderItemText(order, label), cancel: false };
  const until = order.holdExpiresAt ? formatTime(order.holdExpiresAt) : '';
  switch (phase) {
    case 'reserved': {
      const left = holdLeftMs(order, serverNow);
      return {
        ...base,
        tone: 'info',
        title: left === undefined ? 'Reserved — waiting for payment' : `Reserved — pay within ${formatHoldClock(left)}`,
        detail: `The item is held for you${until ? ` until ${until}` : ''}. Payment confirms your order; until then you may cancel it.`,
        cancel: true,
      };
    }
    case 'hold_ended':
      return {
        ...base,
        tone: 'warning',
        title: 'Hold expired — the item goes back on sale',
        detail: `It was held for you${until ? ` until ${until}` : ''} and was not paid. You may buy again now: your purchase gives the old hold back first.`,
      };
    case 'confirmed':
      return { ...base, tone: 'success', title: 'Confirmed', detail: `Your order is paid and final. Bought by ${order.userId} on ${formatTime(order.purchasedAt)}.` };
    case 'cancelled':
      return { ...base, tone: 'info', title: 'Cancelled — the item went back on sale', detail: 'You cancelled this order. You may buy again while stock lasts.' };
    case 'expired':
      return {
        ...base,
        tone: 'warning',
        title: 'Expired — the item went back on sale',
        detail: 'The hold ran out before payment. You may buy again while stock lasts.',
      };
  }
}

/**
 * Whether the page shows `order` in the order panel. A sale without holds has final orders only:
 * the outcome message tells all there is, as it always did.
 */
export function showsOrderPanel(order: Purchase, holdSeconds = 0): boolean {
  return holdSeconds > 0 || orderStatus(order) !== 'confirmed';
}

/** What Buy does while an order is shown: `again` relabels it, `blocked` disables it and says why. */
export interface BuyRule {
  again: boolean;
  blocked: string;
}

export function buyRule(phase: OrderPhase | undefined): BuyRule {
  switch (phase) {
    // Still reserved on the server until released, but a purchase by its buyer releases it first.
    case 'hold_ended':
    case 'cancelled':
    case 'expired':
      return { again: true, blocked: '' };
    default:
      // No order, or one that holds an item: Buy tells the shopper they already have one.
      return { again: false, blocked: '' };
  }
}

/** While reserved: looks for the payment now and then. */
export const RESERVED_POLL_MS = 10_000;
/** After the hold ran out: looks for the release (the sweeper runs every minute). */
export const HOLD_ENDED_POLL_MS = 5_000;

/** When to look the order up again, or undefined while nothing about it can change by itself. */
export function orderPollMs(phase: OrderPhase): number | undefined {
  return phase === 'reserved' ? RESERVED_POLL_MS : phase === 'hold_ended' ? HOLD_ENDED_POLL_MS : undefined;
}

/** What a press of Cancel leads to: the order to show now, a message, or no order at all. */
export interface CancelOutcome {
  order?: Purchase;
  message?: Message;
  /** There is no order for this shopper (any more). */
  gone?: boolean;
}

export function cancelOutcome(result: Result<Purchase>): CancelOutcome {
  if (result.ok) return { order: result.value };
  if (result.kind === 'network') {
    const failed = failureMessage(result);
    return {
      message: {
        ...failed,
        detail: result.timedOut
          ? 'The cancellation may not have gone through. Use “Check my purchase” to see your order.'
          : `Your order is still reserved. ${failed.detail}`,
      },
    };
  }
  const p = result.problem;
  switch (p.code) {
    case 'order_confirmed':
      return {
        order: p.order,
        message: { tone: 'info', title: 'Your order is already confirmed', detail: 'It has been paid, so it can no longer be cancelled.' },
      };
    case 'purchase_not_found':
      return { gone: true, message: { tone: 'info', title: 'No order to cancel', detail: 'There is no order of yours in this sale.' } };
    case 'temporarily_unavailable':
    case 'too_many_requests':
      return { message: { ...failureMessage(result), detail: `Your order is still reserved. ${failureMessage(result).detail}` } };
    default:
      return { message: failureMessage(result) };
  }
}

/** One line of the shopper's order list (a sale with sizes or several items per customer). */
export interface OrderLine {
  orderId: string;
  status: OrderStatus;
  /** What the order holds: `EU 42 × 2`, `2 items`, `1 item`. */
  item: string;
  /** Where it stands, in words. */
  state: string;
  /** Whether it has its own Cancel button (a reserved order whose hold runs, on a sale with holds). */
  cancel: boolean;
  /** The Cancel button's accessible name, `Cancel EU 42 × 2`. */
  cancelLabel: string;
}

/**
 * The order list at `serverNow`: each live order, newest first, and a Cancel of its own for every
 * reserved one whose hold still runs, on a sale with holds that sells more than one per customer
 * (a sale of one per customer has the order panel's Cancel, for its one order).
 */
export function orderLines(
  held: Holdings,
  serverNow: number,
  label: LabelOf,
  { holdSeconds = 0, maxPerCustomer = 1 }: { holdSeconds?: number; maxPerCustomer?: number },
): OrderLine[] {
  return held.orders.map((o) => {
    const phase = orderPhase(o, serverNow);
    const item = orderItemText(o, label) || '1 item';
    const state =
      phase === 'reserved'
        ? 'Reserved, waiting for payment'
        : phase === 'hold_ended'
          ? 'Hold expired, going back on sale'
          : phase === 'confirmed'
            ? 'Confirmed'
            : phase === 'cancelled'
              ? 'Cancelled'
              : 'Expired';
    return {
      orderId: o.orderId,
      status: orderStatus(o),
      item,
      state,
      cancel: holdSeconds > 0 && maxPerCustomer > 1 && phase === 'reserved',
      cancelLabel: `Cancel ${item}`,
    };
  });
}

/**
 * What a press of one order's own Cancel (in the order list) leads to: as {@link cancelOutcome},
 * and since no panel speaks for that order, a message when it went through.
 */
export function lineCancelOutcome(result: Result<Purchase>, label: LabelOf = (id) => id): CancelOutcome {
  const outcome = cancelOutcome(result);
  if (!result.ok) {
    if (outcome.gone) {
      return { ...outcome, message: { tone: 'info', title: 'That order is no longer there', detail: 'Your list of orders is brought up to date.' } };
    }
    return outcome;
  }
  const order = result.value;
  const item = orderItemText(order, label) || '1 item';
  const status = orderStatus(order);
  const message: Message =
    status === 'cancelled'
      ? { tone: 'info', title: `Order cancelled — ${item} went back on sale`, detail: 'Your other orders stay as they are.', orderId: order.orderId }
      : status === 'expired'
        ? { tone: 'warning', title: 'That order had already expired', detail: `Its hold ran out before payment, so ${item} went back on sale.`, orderId: order.orderId }
        : { tone: 'info', title: 'Your order is already confirmed', detail: 'It has been paid, so it can no longer be cancelled.', orderId: order.orderId };
  return { order, message };
}

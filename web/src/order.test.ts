import { describe, expect, it } from 'vitest';

import type { Problem, Purchase, Result } from './api';
import { lookupMessage, purchaseMessage } from './format';
import { holdings } from './variants';
import {
  buyRule,
  cancelOutcome,
  formatHoldClock,
  holdLeftMs,
  holdsItem,
  lineCancelOutcome,
  orderLines,
  orderPanel,
  orderPhase,
  orderPollMs,
  orderStatus,
  showsOrderPanel,
} from './order';

const NOW = Date.parse('2026-01-01T10:00:00.000Z');
const order = (over: Partial<Purchase> = {}): Purchase => ({
  saleId: 'drop',
  userId: 'erin',
  orderId: '01JHOLD',
  purchasedAt: '2026-01-01T09:58:05.000Z',
  status: 'reserved',
  holdExpiresAt: '2026-01-01T10:02:00.000Z',
  ...over,
});
const ok = (value: Purchase, status = 200): Result<Purchase> => ({ ok: true, status, value, ageSeconds: 0, receivedAt: 0 });
const problem = (code: string, extra: Partial<Problem> = {}): Result<Purchase> => ({
  ok: false,
  kind: 'problem',
  problem: { status: 409, code, ...extra },
});

describe('the hold countdown', () => {
  it('reads minutes and seconds, hours only for long holds', () => {
    expect(formatHoldClock(120_000)).toBe('2:00');
    expect(formatHoldClock(119_001)).toBe('2:00');
    expect(formatHoldClock(119_000)).toBe('1:59');
    expect(formatHoldClock(5_000)).toBe('0:05');
    expect(formatHoldClock(600_000)).toBe('10:00');
    expect(formatHoldClock(3_600_000)).toBe('1:00:00');
    expect(formatHoldClock(86_399_000)).toBe('23:59:59');
  });
  it('rounds up, so 0:00 shows only once the hold has ended, and never goes negative', () => {
    expect(formatHoldClock(1)).toBe('0:01');
    expect(formatHoldClock(0)).toBe('0:00');
    expect(formatHoldClock(-4_000)).toBe('0:00');
  });
  it('runs on the server clock', () => {
    expect(holdLeftMs(order(), NOW)).toBe(120_000);
    expect(holdLeftMs(order(), NOW + 130_000)).toBe(0);
    expect(holdLeftMs(order({ holdExpiresAt: undefined }), NOW)).toBeUndefined();
    expect(holdLeftMs(order({ holdExpiresAt: 'soon' }), NOW)).toBeUndefined();
  });
});

describe('the order phase', () => {
  it('is the status, with a reserved order past its hold shown as ended', () => {
    expect(orderPhase(order(), NOW)).toBe('reserved');
    expect(orderPhase(order(), NOW + 119_999)).toBe('reserved');
    expect(orderPhase(order(), NOW + 120_000)).toBe('hold_ended');
    for (const status of ['confirmed', 'cancelled', 'expired'] as const) expect(orderPhase(order({ status }), NOW + 500_000)).toBe(status);
  });
  it('takes an order without a status, or with one the page does not know, as final', () => {
    expect(orderStatus({ ...order(), status: undefined } as unknown as Purchase)).toBe('confirmed');
    expect(orderStatus({ ...order(), status: 'refunded' } as unknown as Purchase)).toBe('confirmed');
  });
  it('holds an item while reserved or confirmed', () => {
    expect(holdsItem(order())).toBe(true);
    expect(holdsItem(order({ status: 'confirmed' }))).toBe(true);
    expect(holdsItem(order({ status: 'cancelled' }))).toBe(false);
    expect(holdsItem(order({ status: 'expired' }))).toBe(false);
  });
});

describe('the order panel', () => {
  it('counts a reserved order down with Cancel and says payment confirms it', () => {
    const p = orderPanel(order(), NOW + 1_500);
    expect(p).toMatchObject({ phase: 'reserved', title: 'Reserved — pay within 1:59', orderId: '01JHOLD', cancel: true, tone: 'info' });
    expect(p.detail).toMatch(/Payment confirms your order; until then you may cancel it\./);
    expect(p.detail).toMatch(/^The item is held for you until .+\. /);
    expect(orderPanel(order(), NOW).title).toBe('Reserved — pay within 2:00');
  });
  it('says the item goes back on sale when the countdown reaches zero, without Cancel', () => {
    const p = orderPanel(order(), NOW + 120_000);
    expect(p).toMatchObject({ phase: 'hold_ended', title: 'Hold expired — the item goes back on sale', cancel: false, tone: 'warning' });
    expect(p.detail).toMatch(/You may buy again now/);
  });
  it('shows confirmed, cancelled and expired orders without Cancel', () => {
    const confirmed = orderPanel(order({ status: 'confirmed' }), NOW);
    expect(confirmed).toMatchObject({ title: 'Confirmed', orderId: '01JHOLD', cancel: false, tone: 'success' });
    expect(confirmed.detail).toContain('Bought by erin');
    expect(orderPanel(order({ status: 'cancelled' }), NOW)).toMatchObject({ title: 'Cancelled — the item went back on sale', cancel: false });
    expect(orderPanel(order({ status: 'cancelled' }), NOW).detail).toMatch(/You may buy again/);
    expect(orderPanel(order({ status: 'expired' }), NOW)).toMatchObject({ title: 'Expired — the item went back on sale', cancel: false });
  });
  it('still offers Cancel for a reserved order whose end is unknown', () => {
    expect(orderPanel(order({ holdExpiresAt: undefined }), NOW)).toMatchObject({ title: 'Reserved — waiting for payment', cancel: true });
  });
  it('shows on sales with holds, and for any order that is not simply final', () => {
    expect(showsOrderPanel(order({ status: 'confirmed' }), 0)).toBe(false);
    expect(showsOrderPanel(order({ status: 'confirmed' }))).toBe(false);
    expect(showsOrderPanel(order({ status: 'confirmed' }), 120)).toBe(true);
    expect(showsOrderPanel(order(), 0)).toBe(true);
    expect(showsOrderPanel(order({ status: 'expired' }), 0)).toBe(true);
  });
});

describe('Buy while an order is shown', () => {
  it('says buy again after a cancel or an expiry, and waits for the release of an ended hold', () => {
    expect(buyRule('cancelled')).toEqual({ again: true, blocked: '' });
    expect(buyRule('expired')).toEqual({ again: true, blocked: '' });
    expect(buyRule('hold_ended').again).toBe(true);
    expect(buyRule('hold_ended').blocked).toBe('');
  });
  it('stays as it is with no order or one that holds the item', () => {
    for (const phase of [undefined, 'reserved', 'confirmed'] as const) expect(buyRule(phase)).toEqual({ again: false, blocked: '' });
  });
});

describe('looking the order up again', () => {
  it('happens while reserved (payment) and after the hold ended (release), not once final', () => {
    expect(orderPollMs('reserved')).toBe(10_000);
    expect(orderPollMs('hold_ended')).toBe(5_000);
    for (const phase of ['confirmed', 'cancelled', 'expired'] as const) expect(orderPollMs(phase)).toBeUndefined();
  });
});

describe('cancelling', () => {
  it('shows the cancelled order (twice is harmless: the same answer)', () => {
    const cancelled = order({ status: 'cancelled' });
    expect(cancelOutcome(ok(cancelled))).toEqual({ order: cancelled });
  });
  it('shows a confirmed order as confirmed, with why it cannot be cancelled', () => {
    const confirmed = order({ status: 'confirmed' });
    const out = cancelOutcome(problem('order_confirmed', { order: confirmed }));
    expect(out.order).toEqual(confirmed);
    expect(out.message).toMatchObject({ title: 'Your order is already confirmed', detail: expect.stringContaining('can no longer be cancelled') });
  });
  it('forgets the order when there is none', () => {
    expect(cancelOutcome(problem('purchase_not_found', { status: 404 }))).toMatchObject({ gone: true, message: { title: 'No order to cancel' } });
  });
  it('keeps the order and says so when the shop is busy or cannot be reached', () => {
    const busy = cancelOutcome(problem('temporarily_unavailable', { status: 503, retryAfterSeconds: 2 }));
    expect(busy.order).toBeUndefined();
    expect(busy.message?.detail).toBe('Your order is still reserved. Try again in 2 seconds.');
    expect(cancelOutcome({ ok: false, kind: 'network', timedOut: false }).message?.detail).toMatch(/^Your order is still reserved\./);
    expect(cancelOutcome({ ok: false, kind: 'network', timedOut: true }).message?.detail).toMatch(/may not have gone through.*Check my purchase/);
    expect(cancelOutcome(problem('internal_error', { status: 500 })).message?.title).toBe('Something went wrong');
  });
});

describe('messages about orders with holds', () => {
  it('do not call a reserved order confirmed', () => {
    expect(purchaseMessage(ok(order(), 201))).toMatchObject({ tone: 'success', title: 'You got it! The item is reserved for you.' });
    expect(purchaseMessage(ok(order({ status: 'confirmed' }), 201)).title).toBe('You got it! Your order is confirmed.');
  });
  it('name every status found by a look-up', () => {
    expect(lookupMessage(ok(order()), 'erin').title).toBe('The item is reserved for you.');
    expect(lookupMessage(ok(order({ status: 'confirmed' })), 'erin').title).toBe('You have this item.');
    expect(lookupMessage(ok(order({ status: 'cancelled' })), 'erin').title).toBe('You cancelled this order.');
    expect(lookupMessage(ok(order({ status: 'expired' })), 'erin').title).toBe('Your hold on this item expired.');
  });
});

describe('the order list on a sale of several per customer', () => {
  const label = (id: string) => ({ eu41: 'EU 41', eu42: 'EU 42' })[id] ?? id;
  const older = order({ orderId: '01JA', variantId: 'eu41', quantity: 1, purchasedAt: '2026-01-01T09:58:00.000Z' });
  const newer = order({ orderId: '01JB', variantId: 'eu42', quantity: 1, purchasedAt: '2026-01-01T09:59:00.000Z' });
  const paid = order({ orderId: '01JC', variantId: 'eu42', quantity: 2, status: 'confirmed', purchasedAt: '2026-01-01T09:57:00.000Z' });

  it('gives each reserved order its own Cancel, named by what it holds, newest first', () => {
    const lines = orderLines(holdings([older, newer, paid]), NOW, label, { holdSeconds: 120, maxPerCustomer: 4 });
    expect(lines.map((l) => [l.orderId, l.item, l.state, l.cancel, l.cancelLabel])).toEqual([
      ['01JB', 'EU 42', 'Reserved, waiting for payment', true, 'Cancel EU 42'],
      ['01JA', 'EU 41', 'Reserved, waiting for payment', true, 'Cancel EU 41'],
      ['01JC', 'EU 42 × 2', 'Confirmed', false, 'Cancel EU 42 × 2'],
    ]);
  });
  it('has no Cancel for a hold that ran out (it is being released), nor without holds or at one per customer', () => {
    const ended = orderLines(holdings([older]), NOW + 130_000, label, { holdSeconds: 120, maxPerCustomer: 2 });
    expect(ended[0]).toMatchObject({ state: 'Hold expired, going back on sale', cancel: false });
    expect(orderLines(holdings([paid]), NOW, label, { holdSeconds: 0, maxPerCustomer: 2 })[0]?.cancel).toBe(false);
    // One per customer: the order panel's Cancel is the one.
    expect(orderLines(holdings([older]), NOW, label, { holdSeconds: 120, maxPerCustomer: 1 })[0]?.cancel).toBe(false);
    expect(orderLines(holdings([order({ orderId: '01JD' })]), NOW, label, { holdSeconds: 120, maxPerCustomer: 2 })[0]).toMatchObject({
      item: '1 item',
      cancelLabel: 'Cancel 1 item',
    });
  });
  it('says what a Cancel of one order did, naming it', () => {
    const done = lineCancelOutcome(ok(order({ ...older, status: 'cancelled' })), label);
    expect(done.order?.status).toBe('cancelled');
    expect(done.message).toMatchObject({ tone: 'info', title: 'Order cancelled — EU 41 went back on sale', orderId: '01JA' });
    expect(lineCancelOutcome(ok(order({ ...older, status: 'expired' })), label).message?.title).toBe('That order had already expired');
    const confirmed = lineCancelOutcome(problem('order_confirmed', { order: { ...older, status: 'confirmed' } }), label);
    expect(confirmed).toMatchObject({ order: { status: 'confirmed' }, message: { title: 'Your order is already confirmed' } });
    expect(lineCancelOutcome(problem('purchase_not_found', { status: 404 }))).toMatchObject({ gone: true, message: { title: 'That order is no longer there' } });
    expect(lineCancelOutcome({ ok: false, kind: 'network', timedOut: false }).message?.detail).toMatch(/^Your order is still reserved\./);
  });
});

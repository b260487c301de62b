import { describe, expect, it } from 'vitest';

import type { Lookup, Problem, Purchase, Result, VariantStatus } from './api';
import { holdingsMessage, lookupMessage, purchaseMessage } from './format';
import { orderPanel } from './order';
import {
  clampQuantity,
  fromLookup,
  holdings,
  maxPerCustomer,
  mergeOrder,
  orderItemText,
  quantityStepper,
  sellsSeveral,
  sizePicker,
  soldOutNote,
  step,
  variantLabel,
} from './variants';

const size = (variantId: string, remainingStock: number, totalStock = 10): VariantStatus => ({
  variantId,
  label: `EU ${variantId.slice(2)}`,
  totalStock,
  remainingStock,
});
const sizes = [size('eu40', 3), size('eu41', 0), size('eu42', 12, 25)];
const sale = { variants: sizes, maxPerCustomer: 2 };
const label = (id: string) => variantLabel(sale, id);

const order = (over: Partial<Purchase> = {}): Purchase => ({
  saleId: 'sneakers',
  userId: 'erin',
  orderId: '01JORDER0000000000000000A1',
  purchasedAt: '2026-01-01T10:00:00.000Z',
  status: 'confirmed',
  ...over,
});
const problem = (code: string, extra: Partial<Problem> = {}, status = 409): Result<Purchase> => ({
  ok: false,
  kind: 'problem',
  problem: { status, code, ...extra },
});
const ok = <T>(value: T): Result<T> => ({ ok: true, status: 200, value, ageSeconds: 0, receivedAt: 0 });

describe('the size picker', () => {
  it('is absent for a sale without variants', () => {
    expect(sizePicker(undefined, undefined)).toBeUndefined();
    expect(sizePicker([], 'eu40')).toBeUndefined();
  });
  it('lists every size with its live stock, sold-out ones off', () => {
    const p = sizePicker(sizes, undefined)!;
    expect(p.options).toEqual([
      { variantId: 'eu40', label: 'EU 40', remaining: 3, total: 10, soldOut: false, text: '3 left' },
      { variantId: 'eu41', label: 'EU 41', remaining: 0, total: 10, soldOut: true, text: 'Sold out' },
      { variantId: 'eu42', label: 'EU 42', remaining: 12, total: 25, soldOut: false, text: '12 left' },
    ]);
    expect(p.selected).toBeUndefined();
    expect(p.lost).toBeUndefined();
  });
  it('keeps a chosen size while it has stock, and ignores one the sale does not have', () => {
    expect(sizePicker(sizes, 'eu42')!.selected).toBe('eu42');
    expect(sizePicker(sizes, 'eu99')!.selected).toBeUndefined();
  });
  it('drops a chosen size that sold out and names it', () => {
    const p = sizePicker([size('eu40', 0), size('eu42', 4)], 'eu40')!;
    expect(p.selected).toBeUndefined();
    expect(p.lost).toBe('EU 40');
  });
  it('takes a sold-out answer newer than the status as sold out', () => {
    const p = sizePicker(sizes, 'eu42', new Set(['eu42']))!;
    expect(p.options[2]).toMatchObject({ soldOut: true, text: 'Sold out', remaining: 12 });
    expect(p.lost).toBe('EU 42');
  });
  it('has the only size of a one-variant sale chosen already (unless it is sold out)', () => {
    expect(sizePicker([size('eu40', 2)], undefined)!.selected).toBe('eu40');
    expect(sizePicker([size('eu40', 0)], undefined)).toEqual({ options: [expect.objectContaining({ soldOut: true })] });
  });
  it('reads a negative stock as none', () => {
    expect(sizePicker([size('eu40', -2)], undefined)!.options[0]).toMatchObject({ remaining: 0, soldOut: true });
  });
});

describe('the note when sizes sell out while the page is open', () => {
  it('says nothing on the first status or when nothing changed', () => {
    const now = sizePicker(sizes, 'eu42');
    expect(soldOutNote(undefined, now)).toBe('');
    expect(soldOutNote(now, sizePicker(sizes, 'eu42'))).toBe('');
    expect(soldOutNote(now, undefined)).toBe('');
  });
  it('names the chosen size and asks for another', () => {
    const before = sizePicker(sizes, 'eu42');
    const after = sizePicker([size('eu40', 3), size('eu41', 0), size('eu42', 0, 25)], 'eu42');
    expect(soldOutNote(before, after)).toBe('EU 42 just sold out — please pick another size.');
  });
  it('names other sizes that sold out, not those that were out already', () => {
    const before = sizePicker(sizes, 'eu42');
    const after = sizePicker([size('eu40', 0), size('eu41', 0), size('eu42', 5, 25)], 'eu42');
    expect(soldOutNote(before, after)).toBe('EU 40 just sold out.');
    const both = sizePicker([size('eu40', 0), size('eu41', 0), size('eu42', 0, 25)], 'eu42');
    expect(soldOutNote(before, both)).toBe('EU 42 just sold out — please pick another size. EU 40 just sold out.');
  });
});

describe('the quantity stepper', () => {
  it('is hidden at one per customer and then always 1', () => {
    expect(quantityStepper(1, 50, 3)).toEqual({ hidden: true, min: 1, max: 1, value: 1 });
  });
  it('goes from 1 to the limit', () => {
    const s = quantityStepper(2, 12, 1);
    expect(s).toEqual({ hidden: false, min: 1, max: 2, value: 1 });
    expect(step(s, 1)).toBe(2);
    expect(step(s, -1)).toBe(1);
    expect(step({ ...s, value: 2 }, 1)).toBe(2);
  });
  it('stops at the chosen size’s stock when fewer are left than the limit', () => {
    expect(quantityStepper(4, 2, 4)).toMatchObject({ max: 2, value: 2 });
    // None left, or not known: the limit bounds it (the answer will say sold out).
    expect(quantityStepper(4, 0, 3)).toMatchObject({ max: 4, value: 3 });
    expect(quantityStepper(4, undefined, 9)).toMatchObject({ max: 4, value: 4 });
  });
  it('goes no further than what the customer may still buy', () => {
    // 1 of 3 held: 2 more at most; the size's stock still bounds it.
    expect(quantityStepper(3, 12, 3, 1)).toEqual({ hidden: false, min: 1, max: 2, value: 2 });
    expect(quantityStepper(3, 1, 3, 1)).toMatchObject({ max: 1, value: 1 });
    // At the limit (the Buy button says so), or a count that makes no sense: never below 1.
    expect(quantityStepper(2, 12, 2, 2)).toMatchObject({ hidden: false, max: 1, value: 1 });
    expect(quantityStepper(2, 12, 2, 5)).toMatchObject({ max: 1 });
    expect(quantityStepper(2, 12, 2, Number.NaN)).toMatchObject({ max: 2, value: 2 });
    expect(quantityStepper(2, 12, 2, -1)).toMatchObject({ max: 2 });
  });
  it('keeps what is typed within bounds, and whole', () => {
    expect(clampQuantity(0, 3)).toBe(1);
    expect(clampQuantity(-5, 3)).toBe(1);
    expect(clampQuantity(2.4, 3)).toBe(2);
    expect(clampQuantity(7, 3)).toBe(3);
    expect(clampQuantity(Number.NaN, 3)).toBe(1);
    expect(clampQuantity(2, 0)).toBe(1);
  });
  it('reads the limit as 1 from a status without one', () => {
    expect(maxPerCustomer(undefined)).toBe(1);
    expect(maxPerCustomer({})).toBe(1);
    expect(maxPerCustomer({ maxPerCustomer: 0 })).toBe(1);
    expect(maxPerCustomer({ maxPerCustomer: 2 })).toBe(2);
    expect(sellsSeveral({})).toBe(false);
    expect(sellsSeveral({ maxPerCustomer: 1 })).toBe(false);
    expect(sellsSeveral({ maxPerCustomer: 3 })).toBe(true);
    expect(sellsSeveral({ variants: sizes, maxPerCustomer: 1 })).toBe(true);
  });
});

describe('what an order holds', () => {
  it('names the size and the quantity', () => {
    expect(orderItemText(order({ variantId: 'eu42', quantity: 2 }), label)).toBe('EU 42 × 2');
    expect(orderItemText(order({ variantId: 'eu42', quantity: 1 }), label)).toBe('EU 42');
    expect(orderItemText(order({ quantity: 3 }), label)).toBe('3 items');
    expect(orderItemText(order({ variantId: 'gone', quantity: 2 }), label)).toBe('gone × 2');
  });
  it('says nothing for a plain one-item order', () => {
    expect(orderItemText(order(), label)).toBe('');
    expect(orderItemText(order({ variantId: 'default', quantity: 1 }), label)).toBe('');
  });
  it('shows in the order panel and in the purchase message', () => {
    const sized = order({ variantId: 'eu42', quantity: 2, status: 'reserved', holdExpiresAt: '2026-01-01T10:02:00.000Z' });
    expect(orderPanel(sized, Date.parse('2026-01-01T10:00:00.000Z'), label).item).toBe('EU 42 × 2');
    expect(orderPanel(order(), 0).item).toBe('');
    const m = purchaseMessage(ok(order({ variantId: 'eu40', quantity: 2 })), { label });
    expect(m.title).toBe('You got it! Your order is confirmed.');
    expect(m.detail).toMatch(/^EU 40 × 2\. Bought by erin on /);
    // A plain order's message is word for word what it was.
    expect(purchaseMessage(ok(order())).detail).toMatch(/^Bought by erin on /);
  });
});

describe('the customer’s live orders', () => {
  const a = order({ orderId: '01A', variantId: 'eu40', quantity: 1, purchasedAt: '2026-01-01T10:00:00.000Z' });
  const b = order({ orderId: '01B', variantId: 'eu42', quantity: 1, purchasedAt: '2026-01-01T10:01:00.000Z' });
  it('are newest first, without cancelled or expired ones, and count their items', () => {
    const h = holdings([a, b, order({ orderId: '01C', status: 'cancelled' }), order({ orderId: '01D', status: 'expired' })]);
    expect(h.orders.map((o) => o.orderId)).toEqual(['01B', '01A']);
    expect(h.held).toBe(2);
    expect(holdings([a], 5).held).toBe(5); // the API's own count wins
  });
  it('take a purchase or a cancel of one order in place', () => {
    expect(mergeOrder([a], b).orders.map((o) => o.orderId)).toEqual(['01B', '01A']);
    expect(mergeOrder([a, b], { ...a, status: 'cancelled' })).toEqual({ orders: [b], held: 1 });
  });
  it('come from the look-up’s list when the API gives one', () => {
    const lookup: Lookup = { ...b, orders: [b, a], held: 2 };
    expect(fromLookup([], lookup)).toEqual({ orders: [b, a], held: 2 });
    expect(fromLookup([a, b], { ...b, orders: [], held: 0 })).toEqual({ orders: [], held: 0 });
  });
  it('fall back to the latest order merged into what the page knew, from an API without a list', () => {
    const h = fromLookup([a], { ...b });
    expect(h).toEqual({ orders: [b, a], held: 2 });
    expect(h.orders[0]).not.toHaveProperty('orders');
    expect(fromLookup([a], { ...a, status: 'cancelled' })).toEqual({ orders: [], held: 0 });
  });
  it('are summed up by “Check my purchase”', () => {
    const m = holdingsMessage(holdings([a, { ...b, quantity: 1 }]), 2, label);
    expect(m).toEqual({ tone: 'success', title: 'You hold 2 of 2 items allowed per customer', detail: '2 orders: EU 42; EU 40.' });
    expect(holdingsMessage(holdings([order({ quantity: 1 })]), 3).title).toBe('You hold 1 of 3 items allowed per customer');
    expect(lookupMessage(ok(order({ variantId: 'eu41', quantity: 2 })), 'erin', label).detail).toMatch(/^EU 41 × 2\. Bought by/);
  });
});

describe('refusals of a sale with sizes and quantities', () => {
  const ctx = { label, variantId: 'eu42', quantity: 2, maxPerCustomer: 2 };
  it('variant_sold_out names the size and the sizes still in stock', () => {
    expect(purchaseMessage(problem('variant_sold_out', { available: ['eu40', 'eu42'] }), ctx)).toEqual({
      tone: 'warning',
      title: 'EU 42 just sold out',
      detail: 'Your order is not confirmed. Still in stock: EU 40.',
    });
    expect(purchaseMessage(problem('variant_sold_out', { available: [] }), ctx).detail).toBe('Your order is not confirmed. No other size is left either.');
    expect(purchaseMessage(problem('variant_sold_out'), {}).title).toBe('This size just sold out');
  });
  it('not_enough_stock says how many are left', () => {
    expect(purchaseMessage(problem('not_enough_stock', { remaining: 1 }), ctx)).toEqual({
      tone: 'warning',
      title: 'Only 1 left in EU 42',
      detail: 'Your order is not confirmed. You asked for 2: choose 1, or another size.',
    });
    expect(purchaseMessage(problem('not_enough_stock', { remaining: 3 }), { quantity: 5 })).toMatchObject({
      title: 'Only 3 left',
      detail: 'Your order is not confirmed. You asked for 5: choose up to 3.',
    });
  });
  it('limit_reached says how many you hold and how many more you may buy', () => {
    expect(purchaseMessage(problem('limit_reached', { held: 2, maxPerCustomer: 2, orders: [] }), ctx)).toEqual({
      tone: 'info',
      title: 'Limit reached: you already hold 2 items',
      detail: 'Your order is not confirmed. This sale allows 2 per customer, so you cannot buy more.',
    });
    expect(purchaseMessage(problem('limit_reached', { held: 1, maxPerCustomer: 3 }), ctx)).toMatchObject({
      title: 'Limit reached: you already hold 1 item',
      detail: 'Your order is not confirmed. This sale allows 3 per customer, so you can buy 2 more.',
    });
    // Without the limit in the answer, the sale's own (from the status) is used.
    expect(purchaseMessage(problem('limit_reached', { held: 1 }), ctx).detail).toMatch(/allows 2 per customer, so you can buy 1 more\.$/);
    expect(purchaseMessage(problem('limit_reached', { held: 1 }), {}).detail).toBe('Your order is not confirmed. This sale has a limit per customer.');
  });
  it('quantity_invalid gives the allowed range', () => {
    expect(purchaseMessage(problem('quantity_invalid', { maxPerCustomer: 2 }), ctx)).toEqual({
      tone: 'error',
      title: 'That quantity is not allowed',
      detail: 'Your order is not confirmed. Choose 1 to 2.',
    });
    expect(purchaseMessage(problem('quantity_invalid', { maxPerCustomer: 1 }), {}).detail).toMatch(/one per customer\.$/);
  });
  it('variant_unknown asks for a size', () => {
    expect(purchaseMessage(problem('variant_unknown', { variants: ['eu40'] }), {})).toMatchObject({
      title: 'Please pick a size',
      detail: 'Your order is not confirmed. This sale comes in several sizes: choose one.',
    });
    expect(purchaseMessage(problem('variant_unknown'), ctx).detail).toMatch(/That size is not sold in this sale/);
  });
  it('idempotency_key_reused points at the order already placed', () => {
    const placed = order({ orderId: '01PLACED', variantId: 'eu40' });
    expect(purchaseMessage(problem('idempotency_key_reused', { purchase: placed }, 422), ctx)).toEqual({
      tone: 'warning',
      title: 'This order was already placed with another size or quantity',
      detail: 'Nothing new was ordered. Press Buy again to place a new order.',
      orderId: '01PLACED',
    });
  });
});

describe('the extras a refusal carries', () => {
  it('are read from the problem body, and junk is left out', async () => {
    const { toProblem } = await import('./api');
    const body = { code: 'limit_reached', held: 2, maxPerCustomer: 2, orders: [order()], available: ['eu40', 7], remaining: 'x' };
    const p = toProblem(new Response(null, { status: 409 }), body);
    expect(p).toMatchObject({ status: 409, code: 'limit_reached', held: 2, maxPerCustomer: 2, orders: [order()], available: ['eu40'] });
    expect(p.remaining).toBeUndefined();
    expect(toProblem(new Response(null, { status: 409 }), { code: 'not_enough_stock', remaining: 1 }).remaining).toBe(1);
    expect(toProblem(new Response(null, { status: 409 }), { code: 'variant_unknown', variants: ['a', 'b'] }).variants).toEqual(['a', 'b']);
  });
});

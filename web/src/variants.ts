// Pure rules of sizes and quantities on the sale page: the size picker as the last status shows
// it, the quantity stepper's bounds, how an order names what it holds, and the customer's live
// orders as the API lists them (or, from an API that lists none, as this page learned them).

import type { Lookup, Purchase, SaleStatus, VariantStatus } from './api';

/** One size in the picker. */
export interface SizeOption {
  variantId: string;
  label: string;
  remaining: number;
  total: number;
  soldOut: boolean;
  /** `12 left`, `Sold out`. */
  text: string;
}

/** The size picker: its options, the size chosen (if it still has stock), and a size just lost. */
export interface Picker {
  options: SizeOption[];
  selected?: string;
  /** The label of the chosen size that has just sold out (the choice is dropped, the page says so). */
  lost?: string;
}

/**
 * The picker for a sale's `variants` (none: no picker). A size is sold out when the status says so
 * or when this page was told it is (`soldOutSeen`, from a `variant_sold_out` answer newer than the
 * status). A sale of one variant has it chosen already.
 */
export function sizePicker(
  variants: readonly VariantStatus[] | undefined,
  selected: string | undefined,
  soldOutSeen: ReadonlySet<string> = new Set(),
): Picker | undefined {
  if (!variants || variants.length === 0) return undefined;
  const options = variants.map((v): SizeOption => {
    const remaining = Math.max(0, v.remainingStock);
    const soldOut = remaining === 0 || soldOutSeen.has(v.variantId);
    return { variantId: v.variantId, label: v.label, remaining, total: v.totalStock, soldOut, text: soldOut ? 'Sold out' : `${remaining} left` };
  });
  const chosen = options.find((o) => o.variantId === selected) ?? (options.length === 1 ? options[0] : undefined);
  if (!chosen) return { options };
  if (chosen.soldOut) return chosen.variantId === selected ? { options, lost: chosen.label } : { options };
  return { options, selected: chosen.variantId };
}

/** A variant's label as the sale status names it, else its id. */
export function variantLabel(sale: Pick<SaleStatus, 'variants'> | undefined, variantId: string): string {
  return sale?.variants?.find((v) => v.variantId === variantId)?.label ?? variantId;
}

/** Whether a sale has sizes to pick or more than one item per customer: the page lists orders. */
export function sellsSeveral(sale: Pick<SaleStatus, 'variants' | 'maxPerCustomer'> | undefined): boolean {
  return Boolean(sale?.variants?.length) || maxPerCustomer(sale) > 1;
}

/** The sale's limit per customer; 1 when the status does not say (an older API). */
export function maxPerCustomer(sale: Pick<SaleStatus, 'maxPerCustomer'> | undefined): number {
  const max = sale?.maxPerCustomer;
  return typeof max === 'number' && Number.isFinite(max) && max >= 1 ? Math.floor(max) : 1;
}

/** The quantity stepper: hidden when the sale sells one per customer. */
export interface Stepper {
  hidden: boolean;
  min: 1;
  max: number;
  value: number;
}

/**
 * The stepper from 1 to what the customer may still buy (the sale's limit less the `held` items
 * of their live orders: more would only be refused as `limit_reached`), and no further than the
 * chosen size's stock when the status shows some left (more would only be refused as
 * `not_enough_stock`). `wanted` is kept inside those bounds.
 */
export function quantityStepper(limit: number, remaining: number | undefined, wanted: number, held = 0): Stepper {
  const perCustomer = Math.max(1, Math.floor(limit));
  const owned = Number.isFinite(held) ? Math.max(0, Math.floor(held)) : 0;
  const left = Math.max(1, perCustomer - owned);
  const max = remaining !== undefined && remaining > 0 ? Math.min(left, remaining) : left;
  return { hidden: perCustomer <= 1, min: 1, max, value: clampQuantity(wanted, max) };
}

/** A whole number from 1 to `max`; anything that is not a number is 1. */
export function clampQuantity(wanted: number, max: number): number {
  if (!Number.isFinite(wanted)) return 1;
  return Math.min(Math.max(1, Math.round(wanted)), Math.max(1, max));
}

/** The stepper after pressing − (`-1`) or + (`+1`). */
export function step(stepper: Stepper, delta: number): number {
  return clampQuantity(stepper.value + delta, stepper.max);
}

/** Items in an order (absent: 1). */
export function orderQuantity(order: Purchase): number {
  const q = order.quantity;
  return typeof q === 'number' && Number.isFinite(q) && q >= 1 ? Math.floor(q) : 1;
}

/**
 * What an order holds, in words: `EU 42 × 2`, `EU 42`, `2 items`; '' for a plain one-item order
 * (nothing to say beyond the order id).
 */
export function orderItemText(order: Purchase, label: (variantId: string) => string): string {
  const q = orderQuantity(order);
  const size = order.variantId && order.variantId !== 'default' ? label(order.variantId) : '';
  if (size) return q > 1 ? `${size} × ${q}` : size;
  return q > 1 ? `${q} items` : '';
}

/** Whether an order holds its items: reserved or confirmed (a status the page does not know is final). */
function live(order: Purchase): boolean {
  return order.status !== 'cancelled' && order.status !== 'expired';
}

/** Newest first: by purchase time, then by order id (a ULID sorts by time). */
function newestFirst(a: Purchase, b: Purchase): number {
  const t = Date.parse(b.purchasedAt) - Date.parse(a.purchasedAt);
  if (t !== 0 && !Number.isNaN(t)) return t;
  return a.orderId < b.orderId ? 1 : a.orderId > b.orderId ? -1 : 0;
}

/** The customer's live orders and the items they hold. */
export interface Holdings {
  orders: Purchase[];
  held: number;
}

export function holdings(orders: readonly Purchase[], held?: number): Holdings {
  const liveOrders = orders.filter(live).sort(newestFirst);
  const sum = liveOrders.reduce((n, o) => n + orderQuantity(o), 0);
  return { orders: liveOrders, held: typeof held === 'number' && Number.isFinite(held) ? held : sum };
}

/**
 * The live orders after `incoming` (an answer about one order: a purchase, a look-up of the latest,
 * a cancel) is merged into what the page knew: it replaces the order with its id, or joins.
 */
export function mergeOrder(known: readonly Purchase[], incoming: Purchase): Holdings {
  return holdings([...known.filter((o) => o.orderId !== incoming.orderId), incoming]);
}

/**
 * The live orders after a look-up: the API's own list (`orders`, `held`) when it gives one; else,
 * from an API that tells only the latest order, that one merged into what the page knew.
 */
export function fromLookup(known: readonly Purchase[], lookup: Lookup): Holdings {
  if (Array.isArray(lookup.orders)) return holdings(lookup.orders, lookup.held);
  const latest: Lookup = { ...lookup };
  delete latest.orders;
  delete latest.held;
  return mergeOrder(known, latest);
}

/**
 * What the picker says when sizes sold out between two statuses (`before` → `after`): the chosen
 * one by name with a request to pick another, others by name; '' when none did (or on the first
 * status, which has nothing to compare with).
 */
export function soldOutNote(before: Picker | undefined, after: Picker | undefined): string {
  if (!before || !after) return '';
  const had = new Set(before.options.filter((o) => !o.soldOut).map((o) => o.variantId));
  const gone = after.options.filter((o) => o.soldOut && had.has(o.variantId) && o.label !== after.lost).map((o) => o.label);
  const parts: string[] = [];
  if (after.lost) parts.push(`${after.lost} just sold out — please pick another size.`);
  if (gone.length > 0) parts.push(`${gone.join(', ')} just sold out.`);
  return parts.join(' ');
}

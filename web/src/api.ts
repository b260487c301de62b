// The flash-sale HTTP API as the page uses it. Every call resolves (never throws) to either the
// JSON body or a failure: a problem+json `code` from the API, or a network failure.

export type SaleState = 'upcoming' | 'active' | 'sold_out' | 'ended';

export interface SaleStatus {
  saleId: string;
  name: string;
  priceCents: number;
  currency: string;
  state: SaleState;
  totalStock: number;
  remainingStock: number;
  startsAt: string;
  endsAt: string;
  serverTime: string;
  /** How long a purchase holds its item for payment; 0 (or absent): purchases are final at once. */
  holdSeconds?: number;
  /** Present for a sale with a waiting room. */
  queue?: RoomView;
  /** The most items one customer may hold (reserved + confirmed); absent (an older API): 1. */
  maxPerCustomer?: number;
  /** Present for a sale created with variants (sizes): each with its own stock. */
  variants?: VariantStatus[];
}

/** One variant (a size) of a sale, with its own stock. */
export interface VariantStatus {
  variantId: string;
  label: string;
  sku?: string;
  totalStock: number;
  remainingStock: number;
}

/** What one press of Buy orders: a variant (on a sale with several) and a quantity (default 1). */
export interface OrderChoice {
  variantId?: string;
  quantity?: number;
}

/** The room's phase as the sale status tells it. */
export type RoomPhase = 'not_open' | 'prequeue' | 'drawing' | 'admitting' | 'paused' | 'sold_out' | 'closed';

/** A waiting room in the sale status (cacheable for a second, like the rest of it). */
export interface RoomView {
  state: RoomPhase;
  /** Places issued and not yet admitted. */
  length: number;
  /** Every place up to and including this one is admitted. */
  admittedThrough: number;
  admitPerSecond: number;
  prequeueOpensAt: string;
  /** SHA-256 (hex) of the draw seed, published before the draw. */
  drawCommitment: string;
  /** The draw seed (hex), revealed once the pre-queue is drawn. */
  drawSeed?: string;
  /** A public draw: the drand round fixed at creation (its signature once drawn). */
  beacon?: { chainHash: string; round: number; publishedAt: string; url: string; signature?: string; randomness?: string };
  /** A public draw, once drawn: the Merkle root of the sealed entrant list and its size. */
  entrantsRoot?: string;
  entrantCount?: number;
}

/** A person's proof that SHA-256(userId) is in the sealed list (RFC 9162 audit path). */
export interface EntrantProof {
  id: string;
  index: number;
  size: number;
  path: string[];
}

export type PlaceState = 'waiting' | 'admitted' | 'sold_out' | 'closed';

/** One person's place in a sale's waiting room (`POST …/queue`, `GET …/queue/{userId}`; never cached). */
export interface PlaceView {
  saleId: string;
  userId: string;
  state: PlaceState;
  /** The place in the room; null in the pre-queue until the draw at opening. */
  position: number | null;
  aheadOfYou: number | null;
  estimatedWaitSeconds: number | null;
  /** Present when admitted: sent as `admissionToken` with the order. */
  admissionToken?: string;
  admissionExpiresAt?: string;
  /** Present when admitted: an item is set aside until then. */
  setAsideUntil?: string;
  /** A public draw, once placed: the proof that this person is in the published list. */
  entrantProof?: EntrantProof;
}

/**
 * Where an order stands: `reserved` holds its item until `holdExpiresAt` waiting for payment,
 * `confirmed` is final (paid, or a sale without holds), `cancelled` (by the buyer) and `expired`
 * (the hold ran out) gave the item back, and their buyer may buy again.
 */
export type OrderStatus = 'reserved' | 'confirmed' | 'cancelled' | 'expired';

/** An order (`POST …/purchases`, `GET|DELETE …/purchases/{userId}`). */
export interface Purchase {
  saleId: string;
  userId: string;
  orderId: string;
  purchasedAt: string;
  status: OrderStatus;
  /** RFC 3339 UTC: until when a reserved order holds its item (still present after it ended). */
  holdExpiresAt?: string;
  /** On a sale with variants: the variant bought. */
  variantId?: string;
  /** On a sale with variants or more than one per customer: the items in the order (absent: 1). */
  quantity?: number;
}

/**
 * `GET …/purchases/{userId}`: the latest order; an API that knows several orders per customer adds
 * every live one (`orders`, newest first) and the items they hold (`held`).
 */
export interface Lookup extends Purchase {
  orders?: Purchase[];
  held?: number;
}

/**
 * An RFC 9457 problem with the API's stable `code`, plus the extras some codes carry. Answers that
 * are not problem+json get a code of their own: `too_many_requests` for a 429 (API Gateway's
 * throttle and the WAF's rate rules answer `{"message":"Too Many Requests"}`), else `http_{status}`.
 */
export interface Problem {
  status: number;
  code: string;
  detail?: string;
  /** The existing order (`already_purchased`). */
  purchase?: Purchase;
  /** The order as it is (`order_confirmed`, `order_cancelled`, `hold_expired`). */
  order?: Purchase;
  startsAt?: string;
  /** When the room opens (`queue_not_open`). */
  opensAt?: string;
  /** From `Retry-After` or the body's `retryAfterSeconds` (503, and 429 when given). */
  retryAfterSeconds?: number;
  /** The variants that still have stock (`variant_sold_out`). */
  available?: string[];
  /** The sale's variants (`variant_unknown`). */
  variants?: string[];
  /** Items left of the variant (`not_enough_stock`). */
  remaining?: number;
  /** Items the customer holds (`limit_reached`). */
  held?: number;
  /** The sale's limit (`limit_reached`, `quantity_invalid`). */
  maxPerCustomer?: number;
  /** The customer's live orders (`limit_reached`). */
  orders?: Purchase[];
}

export type Result<T> =
  | { ok: true; status: number; value: T; ageSeconds: number; receivedAt: number }
  | { ok: false; kind: 'problem'; problem: Problem }
  | { ok: false; kind: 'network'; timedOut: boolean };

export interface Identity {
  userId: string;
  token: string;
}

const TIMEOUT_MS = 15_000;

export class Api {
  constructor(private readonly base: string) {}

  listSales(): Promise<Result<{ sales: SaleStatus[] }>> {
    return this.call('/sales');
  }

  sale(saleId: string): Promise<Result<SaleStatus>> {
    return this.call(`/sales/${encodeURIComponent(saleId)}`);
  }

  /**
   * One attempt of an order; every attempt of one press of Buy carries the same `idempotencyKey`.
   * A sale with a waiting room also needs the admission token the room handed out.
   */
  purchase(
    saleId: string,
    who: Identity,
    idempotencyKey: string,
    admissionToken?: string,
    choice: OrderChoice = {},
  ): Promise<Result<Purchase>> {
    const body: Record<string, string | number> = userBody(who);
    if (admissionToken) body.admissionToken = admissionToken;
    // Left out when not chosen: a plain sale's order is the same body as ever.
    if (choice.variantId) body.variantId = choice.variantId;
    if (choice.quantity !== undefined && choice.quantity !== 1) body.quantity = choice.quantity;
    return this.call(`/sales/${encodeURIComponent(saleId)}/purchases`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey, ...auth(who.token) },
      body: JSON.stringify(body),
    });
  }

  /** Joins the sale's waiting room; joining again answers with the same place. */
  joinRoom(saleId: string, who: Identity): Promise<Result<PlaceView>> {
    return this.call(`/sales/${encodeURIComponent(saleId)}/queue`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth(who.token) },
      body: JSON.stringify(userBody(who)),
    });
  }

  /** This person's place in the room; the only way to receive the admission token. */
  place(saleId: string, who: Identity): Promise<Result<PlaceView>> {
    const path = `/sales/${encodeURIComponent(saleId)}/queue/${encodeURIComponent(who.userId)}`;
    return this.call(path, { headers: auth(who.token) });
  }

  lookup(saleId: string, who: Identity): Promise<Result<Lookup>> {
    const path = `/sales/${encodeURIComponent(saleId)}/purchases/${encodeURIComponent(who.userId)}`;
    return this.call(path, { headers: auth(who.token) });
  }

  /**
   * Cancels this shopper's reserved order: the item goes back on sale. Cancelling a cancelled or
   * expired order answers it as it is; a confirmed one is refused (`order_confirmed`). `orderId`
   * names the order (a shopper may hold several); without it, the latest reserved one.
   */
  cancel(saleId: string, who: Identity, orderId?: string): Promise<Result<Purchase>> {
    const query = orderId ? `?orderId=${encodeURIComponent(orderId)}` : '';
    const path = `/sales/${encodeURIComponent(saleId)}/purchases/${encodeURIComponent(who.userId)}${query}`;
    return this.call(path, { method: 'DELETE', headers: auth(who.token) });
  }

  private async call<T>(path: string, init: RequestInit = {}): Promise<Result<T>> {
    let resp: Response;
    try {
      resp = await fetch(this.base + path, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (err) {
      return { ok: false, kind: 'network', timedOut: err instanceof DOMException && err.name === 'TimeoutError' };
    }
    const receivedAt = Date.now();
    const body: unknown = await resp.json().catch(() => undefined);
    if (resp.ok && body !== undefined) {
      // A cached copy (CDN) is older than its serverTime says; Age tells by how much.
      const ageSeconds = Number(resp.headers.get('Age')) || 0;
      return { ok: true, status: resp.status, value: body as T, ageSeconds, receivedAt };
    }
    return { ok: false, kind: 'problem', problem: toProblem(resp, body) };
  }
}

/**
 * AUTH_MODE=body reads the buyer from the body; AUTH_MODE=jwt from the token, and accepts a body
 * userId only if it is the token's own subject.
 */
function userBody(who: Identity): Record<string, string> {
  return who.userId ? { userId: who.userId } : {};
}

function auth(token: string): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function toProblem(resp: Response, body: unknown): Problem {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<Problem>;
  const problem: Problem = {
    status: resp.status,
    code: typeof b.code === 'string' ? b.code : resp.status === 429 ? 'too_many_requests' : `http_${resp.status}`,
    detail: typeof b.detail === 'string' ? b.detail : undefined,
    purchase: b.purchase,
    startsAt: typeof b.startsAt === 'string' ? b.startsAt : undefined,
  };
  if (typeof b.opensAt === 'string') problem.opensAt = b.opensAt;
  if (typeof b.order === 'object' && b.order !== null) problem.order = b.order;
  const ids = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
  const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const available = ids(b.available);
  if (available) problem.available = available;
  const variants = ids(b.variants);
  if (variants) problem.variants = variants;
  const remaining = count(b.remaining);
  if (remaining !== undefined) problem.remaining = remaining;
  const held = count(b.held);
  if (held !== undefined) problem.held = held;
  const max = count(b.maxPerCustomer);
  if (max !== undefined) problem.maxPerCustomer = max;
  if (Array.isArray(b.orders)) problem.orders = b.orders;
  const retryHeader = Number(resp.headers.get('Retry-After'));
  const retry = retryHeader > 0 ? retryHeader : Number(b.retryAfterSeconds);
  if (retry > 0) problem.retryAfterSeconds = Math.min(Math.ceil(retry), 60);
  return problem;
}

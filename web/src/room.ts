// Pure rules of the waiting room on the sale page: what the room panel says, how far the admitted
// range has come towards a shopper's place, the admission countdown, and when to ask the API for a
// shopper's own place (rarely: the shared, cached status carries the rest).

import type { PlaceView, Result, RoomView, SaleState } from './api';
import { failureMessage, formatDuration, formatTime, type Message } from './format';

/** Where a shopper is, as the page shows it. */
export type RoomPanelPhase =
  | 'not_open' // the room has not opened yet: Join is disabled until it does
  | 'join' // the room is open and this browser has not joined
  | 'finding' // this browser joined earlier (a reload): asking for the place
  | 'prequeue' // joined before the start: the place comes from the draw at opening
  | 'drawing' // the draw is under way: the place comes in a moment
  | 'waiting' // a place, not admitted yet
  | 'paused' // a place, admission paused by the operator
  | 'turn_pending' // the cached status says it is this place's turn; the token is on its way
  | 'admitted' // holds a valid admission token: Buy
  | 'expired' // the admission ran out before an order
  | 'bought' // the order went through
  | 'sold_out' // every item sold: the wait is over
  | 'closed'; // the sale window closed

export interface PlaceProgress {
  /** Places admitted so far, at most `max`. */
  value: number;
  /** The shopper's place. */
  max: number;
  text: string;
}

export interface RoomPanel {
  phase: RoomPanelPhase;
  title: string;
  detail: string;
  /** How far the admitted range has come towards the shopper's place. */
  progress?: PlaceProgress;
  /** What the page's main button does: join the room, buy with the token, or nothing (disabled). */
  action: 'join' | 'buy' | 'none';
  /** The main button's label when it does not buy (Buy shows the price). */
  button: string;
}

export interface RoomInput {
  /** The room in the last sale status (cached up to a second). */
  room: RoomView;
  /** The sale's state at `serverNow` (window and stock). */
  saleState: SaleState;
  /** The last answer about this shopper's own place; undefined when this browser has not joined. */
  place?: PlaceView;
  /** Who this browser joined as, before the first answer about their place (after a reload). */
  joinedAs?: string;
  /** The shopper joined in the pre-queue, so a place after opening is a drawn one. */
  drawn?: boolean;
  /**
   * The shopper holds what the admission lets them buy: the order went through (201 or already
   * purchased) on a sale of one per customer, the limit's worth of items on one of several.
   */
  bought?: boolean;
  /** The sale's limit per customer (absent: 1): an admission sets that many items aside. */
  maxPerCustomer?: number;
  /** Items this shopper holds in the sale (on a sale of several per customer). */
  held?: number;
  /** Now on the server's clock (ms since the epoch). */
  serverNow: number;
}

/** `about 42 s`, `about 3 min`: an estimate, never precise to the second above two minutes. */
export function waitText(seconds: number): string {
  const s = Math.max(1, Math.ceil(seconds));
  return s < 120 ? `about ${s} s` : `about ${Math.round(s / 60)} min`;
}

/**
 * The admitted range as best known: the cached status's, or the one the shopper's own (fresher
 * or older) answer implies, whichever is further.
 */
export function admittedThrough(room: RoomView, place?: PlaceView): number {
  const fromPlace = place?.position != null && place.aheadOfYou != null ? place.position - 1 - place.aheadOfYou : 0;
  return Math.max(room.admittedThrough, fromPlace);
}

/** How far the admitted range has come towards `position`. */
export function placeProgress(position: number, admitted: number): PlaceProgress {
  const value = Math.max(0, Math.min(admitted, position));
  return { value, max: position, text: `Admitted up to place ${Math.max(0, admitted)} · your place ${position}` };
}

/** Milliseconds left of an admission on the server's clock; 0 when it ran out or cannot be read. */
export function admissionLeftMs(expiresAt: string | undefined, serverNow: number): number {
  const exp = expiresAt ? Date.parse(expiresAt) : Number.NaN;
  return Number.isNaN(exp) ? 0 : Math.max(0, exp - serverNow);
}

/** `Buy within 04:59`: the admission's countdown. */
export function admissionCountdown(expiresAt: string | undefined, serverNow: number): string {
  return `Buy within ${formatDuration(admissionLeftMs(expiresAt, serverNow))}`;
}

const KEEP_OPEN = 'Keep this page open: Buy appears here when it is your turn.';

/** What the room panel and the main button say, from the cached status and the shopper's place. */
export function roomPanel({ room, saleState, place, joinedAs, drawn = false, bought = false, maxPerCustomer = 1, held = 0, serverNow }: RoomInput): RoomPanel {
  const joined = place !== undefined || joinedAs !== undefined;
  const limit = Math.max(1, Math.floor(maxPerCustomer));
  if (bought) return boughtPanel(limit, held);
  // Part of the limit bought, and the admission can buy no more: what was bought stays.
  const admissionOver = place !== undefined && (place.state === 'closed' || ((place.state === 'admitted' || place.admissionToken) && (!place.admissionToken || admissionLeftMs(place.admissionExpiresAt, serverNow) <= 0)));
  if (limit > 1 && held > 0 && admissionOver) return boughtPanel(limit, held);
  if (room.state === 'closed' || saleState === 'ended') {
    return {
      phase: 'closed',
      title: 'The sale is closed',
      detail: joined ? 'The line closed before you could order. No more orders are taken.' : 'The line is closed and no more orders are taken.',
      action: 'none',
      button: 'Sale closed',
    };
  }
  if (room.state === 'sold_out' || saleState === 'sold_out' || place?.state === 'sold_out') {
    return {
      phase: 'sold_out',
      title: 'Sold out — the wait is over',
      detail: joined ? 'Every item was sold before your turn. Thank you for waiting.' : 'Every item has been sold.',
      action: 'none',
      button: 'Sold out',
    };
  }
  if (!place && joinedAs !== undefined) {
    return { phase: 'finding', title: 'Finding your place in line…', detail: `You joined as ${joinedAs}.`, action: 'none', button: 'Finding your place…' };
  }
  if (!place) {
    const opensAt = Date.parse(room.prequeueOpensAt);
    if (room.state === 'not_open' && serverNow < opensAt) {
      return {
        phase: 'not_open',
        title: `The line opens in ${formatDuration(opensAt - serverNow)}`,
        detail: `Join from ${formatTime(room.prequeueOpensAt)}. Everyone who joins before the start gets a place drawn at random at opening.`,
        action: 'none',
        button: 'Join the line',
      };
    }
    const detail =
      room.state === 'not_open' || room.state === 'prequeue'
        ? 'Join before the start: places in the pre-queue are drawn at random at opening, so there is no need to rush.'
        : room.state === 'drawing'
          ? 'The pre-queue is being drawn. Join now for the first place after it.'
          : `${room.length} ${room.length === 1 ? 'person is' : 'people are'} waiting. Join to get the next place.`;
    return { phase: 'join', title: 'This sale has a waiting room', detail, action: 'join', button: 'Join the line' };
  }
  const placeText = (p: number) => (drawn ? `Your place, drawn at opening: ${p}.` : `Your place: ${p}.`);
  if (place.state === 'admitted' || place.admissionToken) {
    const left = admissionLeftMs(place.admissionExpiresAt, serverNow);
    if (left <= 0 || !place.admissionToken) return expired(place);
    const placeNote = place.position != null ? `${placeText(place.position)} ` : '';
    const progress = place.position != null ? placeProgress(place.position, place.position) : undefined;
    // The token buys, and an item is set aside, until the same moment.
    const until = place.admissionExpiresAt;
    return {
      phase: 'admitted',
      title: `It’s your turn! ${admissionCountdown(until, serverNow)}`,
      detail: `${placeNote}${setAsideText(limit, held)} until ${formatTime(until ?? '')}.`,
      progress,
      action: 'buy',
      button: 'Buy now',
    };
  }
  if (place.state === 'closed') return expired(place);
  // Waiting.
  const p = place.position;
  if (p == null) {
    if (room.state === 'not_open' || room.state === 'prequeue') {
      return {
        phase: 'prequeue',
        title: 'You are in the pre-queue: places are drawn at opening',
        detail:
          `Arrival order does not count. The draw can be verified: commitment ${room.drawCommitment}.` +
          (room.beacon ? ` Its randomness is drand round ${room.beacon.round}, published after the pre-queue closes: nobody knows it before.` : ''),
        action: 'none',
        button: 'Waiting for the draw',
      };
    }
    return { phase: 'drawing', title: 'The draw is under way', detail: 'Your place appears in a moment.', action: 'none', button: 'Waiting for your place' };
  }
  const admitted = admittedThrough(room, place);
  const progress = placeProgress(p, admitted);
  const placeNote = placeText(p);
  if (p <= admitted) {
    return { phase: 'turn_pending', title: 'It’s your turn — getting your admission…', detail: placeNote, progress, action: 'none', button: 'Getting your admission…' };
  }
  const ahead = Math.max(0, p - admitted - 1);
  if (room.state === 'paused') {
    return {
      phase: 'paused',
      title: `You are in line — ${ahead} ahead of you`,
      detail: `${placeNote} Admission is paused for a moment; you keep your place.`,
      progress,
      action: 'none',
      button: 'Waiting for your turn',
    };
  }
  const rate = Math.max(1, room.admitPerSecond);
  return {
    phase: 'waiting',
    title: `You are in line — ${ahead} ahead of you, ${waitText((p - admitted) / rate)}`,
    detail: `${placeNote} ${KEEP_OPEN}`,
    progress,
    action: 'none',
    button: 'Waiting for your turn',
  };
}

/**
 * What the admission sets aside: `An item is set aside for you` (one per customer), `Up to 2 items
 * are set aside for you`, and once part is bought, `You hold 1 of 3: up to 2 more are set aside for you`.
 */
export function setAsideText(maxPerCustomer: number, held = 0): string {
  const limit = Math.max(1, Math.floor(maxPerCustomer));
  if (limit === 1) return 'An item is set aside for you';
  if (held <= 0) return `Up to ${limit} items are set aside for you`;
  const left = Math.max(0, limit - held);
  return `You hold ${held} of ${limit}: up to ${left} more ${left === 1 ? 'is' : 'are'} set aside for you`;
}

function boughtPanel(limit: number, held: number): RoomPanel {
  if (limit === 1) {
    return { phase: 'bought', title: 'You have your item', detail: 'Your order went through; your place in line is used.', action: 'none', button: 'Bought' };
  }
  return {
    phase: 'bought',
    title: held === 1 ? 'You have your item' : 'You have your items',
    detail: `You hold ${held} of the ${limit} items allowed per customer; your place in line is used.`,
    action: 'none',
    button: 'Bought',
  };
}

function expired(place: PlaceView): RoomPanel {
  return {
    phase: 'expired',
    title: 'Your admission expired',
    detail: place.admissionExpiresAt
      ? `It was held for you until ${formatTime(place.admissionExpiresAt)}. A place in line is one per person and cannot be used again.`
      : 'It ran out before an order. A place in line is one per person and cannot be used again.',
    action: 'none',
    button: 'Admission expired',
  };
}

/**
 * When a waiting page asks for its own place (`GET /sales/{saleId}/queue/{userId}`, uncached: API
 * Gateway, Lambda and a DynamoDB read each time). Everything else the page learns from the shared
 * sale status, which the CDN caches for a second, so the requests that reach the functions during
 * the wait are bound by the admission rate, not by the crowd:
 *
 * - places within `admitPerSecond × horizonMs` of the admitted range ask at a status poll whose
 *   admitted range moved since their last ask (at most once per `minGapMs`): ≤ 2 × admitPerSecond/s
 *   with a horizon of two status polls;
 * - a place the status says is admitted asks for its token (once, again after `minGapMs`): ≤ admitPerSecond/s;
 * - every page asks `safetyMs × (½ + ½ × jitter)` after its last ask anyway: ≤ crowd / 30 per second;
 * - a pre-queue page asks once after the draw, a random share (`jitter`) of `length /
 *   drawReadsPerSecond` (at most `drawSpreadMaxMs`, well under the claim window: the first places
 *   drawn are admitted at once and learn it this way) after it saw the draw done;
 * - a page that lost its place view (a reload) asks once, then every `retryMs` until it has one.
 *
 * Joins add their own rate. See docs/storefront.md ("Polling the line").
 */
export const PLACE_ASK = {
  minGapMs: 1000,
  horizonMs: 2000,
  safetyMs: 60_000,
  retryMs: 5000,
  drawReadsPerSecond: 10_000,
  drawSpreadMaxMs: 5000,
} as const;

export interface PlaceAskInput {
  /** The room in the last sale status (cached up to a second). */
  room: RoomView;
  /** The last answer about this shopper's own place; undefined before the first (after a reload). */
  place?: PlaceView;
  /** Now, on the page's clock (ms). */
  now: number;
  /** When the page last asked for its own place or joined (-Infinity: never). */
  lastAskAt: number;
  /** `room.admittedThrough` as the status said when the page last asked. */
  admittedAtAsk: number;
  /** When the page first saw a status with the draw done while its place was not drawn yet. */
  drawSeenAt?: number;
  /** This page's random number in [0, 1), drawn once: spreads the pages' asks over time. */
  jitter: number;
}

/** The room's states in which the pre-queue has not been drawn yet. */
export function drawPending(room: RoomView): boolean {
  return room.state === 'not_open' || room.state === 'prequeue' || room.state === 'drawing';
}

/** How long after seeing the draw done a pre-queue page reads its drawn place (ms). */
export function drawReadDelayMs(room: RoomView, jitter: number): number {
  const spread = Math.min(PLACE_ASK.drawSpreadMaxMs, (Math.max(0, room.length) / PLACE_ASK.drawReadsPerSecond) * 1000);
  return jitter * spread;
}

/** Whether the page asks for its own place now (see {@link PLACE_ASK}). */
export function shouldAskPlace({ room, place, now, lastAskAt, admittedAtAsk, drawSeenAt, jitter }: PlaceAskInput): boolean {
  const since = now - lastAskAt;
  if (since < PLACE_ASK.minGapMs) return false;
  if (room.state === 'sold_out' || room.state === 'closed') return false; // the status says it all
  if (!place) return since >= PLACE_ASK.retryMs || lastAskAt === -Infinity;
  if (place.state !== 'waiting') return false;
  if (place.position == null) {
    if (drawPending(room)) return false;
    const seen = drawSeenAt ?? now;
    if (lastAskAt < seen) return now >= seen + drawReadDelayMs(room, jitter);
    return since >= PLACE_ASK.retryMs;
  }
  const admitting = room.state === 'admitting' || room.state === 'paused';
  if (admitting && place.position <= room.admittedThrough) return true;
  const horizon = room.admittedThrough + Math.max(0, room.admitPerSecond) * (PLACE_ASK.horizonMs / 1000);
  if (room.state === 'admitting' && place.position <= horizon && room.admittedThrough > admittedAtAsk) return true;
  return since >= PLACE_ASK.safetyMs * (0.5 + 0.5 * jitter);
}

/** What to tell the shopper when joining the room failed. */
export function joinFailureMessage(failure: Exclude<Result<PlaceView>, { ok: true }>): Message {
  if (failure.kind === 'problem') {
    const p = failure.problem;
    switch (p.code) {
      case 'queue_not_open':
        return {
          tone: 'info',
          title: 'The line is not open yet',
          detail: p.opensAt ? `It opens on ${formatTime(p.opensAt)}.` : 'Wait for the countdown to end.',
        };
      case 'no_waiting_room':
        return { tone: 'info', title: 'This sale has no waiting room', detail: 'Reload the page to buy directly.' };
      case 'temporarily_unavailable':
      case 'too_many_requests': {
        const secs = p.retryAfterSeconds ?? 1;
        return { tone: 'warning', title: 'The line is very busy', detail: `You are not in line yet. Try again in ${secs} ${secs === 1 ? 'second' : 'seconds'}.` };
      }
    }
  }
  return failureMessage(failure);
}

/** While joining the room waits to be sent again by itself. */
export function joinBusyMessage(secondsLeft: number): Message {
  return {
    tone: 'warning',
    title: `Busy — trying again in ${Math.max(1, Math.ceil(secondsLeft))} s`,
    detail: 'The line is very busy. You are not in line yet; keep this page open.',
  };
}

/** The waiting room's note on a sale card in the list ('' once there is nothing to wait for). */
export function roomNote(room: RoomView): string {
  switch (room.state) {
    case 'not_open':
      return `Waiting room · the line opens ${formatTime(room.prequeueOpensAt)}`;
    case 'prequeue':
      return 'Waiting room · join the line now: places are drawn at opening';
    case 'drawing':
      return 'Waiting room · drawing places';
    case 'admitting':
      return `Waiting room · ${room.length} in line · join the line`;
    case 'paused':
      return `Waiting room · ${room.length} in line · admission paused`;
    case 'sold_out':
    case 'closed':
      return '';
  }
}

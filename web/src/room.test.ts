import { describe, expect, it } from 'vitest';

import type { PlaceView, Problem, Result, RoomView } from './api';
import { purchaseMessage } from './format';
import {
  admissionCountdown,
  admissionLeftMs,
  admittedThrough,
  drawReadDelayMs,
  joinFailureMessage,
  PLACE_ASK,
  type PlaceAskInput,
  roomPanel,
  setAsideText,
  shouldAskPlace,
  placeProgress,
  roomNote,
  waitText,
} from './room';

const NOW = Date.parse('2026-01-01T10:00:00.000Z');
const COMMITMENT = 'ab'.repeat(32);

const room = (over: Partial<RoomView> = {}): RoomView => ({
  state: 'admitting',
  length: 40,
  admittedThrough: 100,
  admitPerSecond: 2,
  prequeueOpensAt: '2026-01-01T09:45:00.000Z',
  drawCommitment: COMMITMENT,
  ...over,
});

const place = (over: Partial<PlaceView> = {}): PlaceView => ({
  saleId: 'line',
  userId: 'dana',
  state: 'waiting',
  position: 120,
  aheadOfYou: 19,
  estimatedWaitSeconds: 10,
  ...over,
});

const problem = (p: Partial<Problem> & { code: string }): Exclude<Result<never>, { ok: true }> => ({
  ok: false,
  kind: 'problem',
  problem: { status: 403, ...p },
});

describe('the room panel', () => {
  it('offers to join when this browser has not joined', () => {
    const p = roomPanel({ room: room({ state: 'prequeue' }), saleState: 'upcoming', serverNow: NOW });
    expect(p.phase).toBe('join');
    expect(p.action).toBe('join');
    expect(p.button).toBe('Join the line');
    expect(p.detail).toMatch(/drawn at random at opening/);
    const later = roomPanel({ room: room({ length: 1 }), saleState: 'active', serverNow: NOW });
    expect(later.detail).toBe('1 person is waiting. Join to get the next place.');
  });

  it('counts down to the opening of the room, with Join disabled until then', () => {
    const r = room({ state: 'not_open', prequeueOpensAt: '2026-01-01T10:00:05.000Z' });
    const p = roomPanel({ room: r, saleState: 'upcoming', serverNow: NOW });
    expect(p).toMatchObject({ phase: 'not_open', action: 'none', title: 'The line opens in 00:05' });
    // The server's clock passed the opening; the cached status has not caught up yet.
    expect(roomPanel({ room: r, saleState: 'upcoming', serverNow: NOW + 5000 }).action).toBe('join');
  });

  it('after a reload, finds the place before offering anything', () => {
    const p = roomPanel({ room: room(), saleState: 'active', joinedAs: 'dana', serverNow: NOW });
    expect(p).toMatchObject({ phase: 'finding', action: 'none' });
  });

  it('in the pre-queue, says that places are drawn at opening and shows the commitment', () => {
    const p = roomPanel({ room: room({ state: 'prequeue' }), saleState: 'upcoming', place: place({ position: null, aheadOfYou: null, estimatedWaitSeconds: null }), serverNow: NOW });
    expect(p.phase).toBe('prequeue');
    expect(p.title).toBe('You are in the pre-queue: places are drawn at opening');
    expect(p.detail).toContain(`The draw can be verified: commitment ${COMMITMENT}`);
    expect(p.detail).not.toContain('drand');
    expect(p.action).toBe('none');
    expect(p.progress).toBeUndefined();
  });

  it('in the pre-queue of a public draw, names the drand round that will order it', () => {
    const beacon = { chainHash: 'c'.repeat(64), round: 123, publishedAt: '2026-01-01T10:00:05.000Z', url: 'https://api.drand.sh/x/public/123' };
    const waiting = place({ position: null, aheadOfYou: null, estimatedWaitSeconds: null });
    const p = roomPanel({ room: room({ state: 'prequeue', beacon }), saleState: 'upcoming', place: waiting, serverNow: NOW });
    expect(p.detail).toContain(`commitment ${COMMITMENT}`);
    expect(p.detail).toContain('drand round 123');
  });

  it('after the start and before the place is known, says the draw is under way', () => {
    const pre = place({ position: null, aheadOfYou: null, estimatedWaitSeconds: null });
    expect(roomPanel({ room: room({ state: 'drawing' }), saleState: 'active', place: pre, serverNow: NOW }).phase).toBe('drawing');
    expect(roomPanel({ room: room(), saleState: 'active', place: pre, serverNow: NOW }).phase).toBe('drawing');
  });

  it('while waiting, says how many are ahead and about how long, with the drawn place', () => {
    const p = roomPanel({ room: room(), saleState: 'active', place: place(), drawn: true, serverNow: NOW });
    expect(p.phase).toBe('waiting');
    expect(p.title).toBe('You are in line — 19 ahead of you, about 10 s');
    expect(p.detail).toMatch(/^Your place, drawn at opening: 120\./);
    expect(p.progress).toEqual({ value: 100, max: 120, text: 'Admitted up to place 100 · your place 120' });
    expect(roomPanel({ room: room(), saleState: 'active', place: place(), serverNow: NOW }).detail).toMatch(/^Your place: 120\./);
  });

  it('follows the cached status between polls of the own place', () => {
    // The status moved on to 110 since the shopper's own answer (which implied 100).
    const p = roomPanel({ room: room({ admittedThrough: 110 }), saleState: 'active', place: place(), serverNow: NOW });
    expect(p.title).toBe('You are in line — 9 ahead of you, about 5 s');
    expect(p.progress?.value).toBe(110);
    // A status older than the own answer does not move the shopper back.
    expect(admittedThrough(room({ admittedThrough: 90 }), place())).toBe(100);
  });

  it('when the status says it is this place’s turn, waits for the token without offering Buy', () => {
    const p = roomPanel({ room: room({ admittedThrough: 120 }), saleState: 'active', place: place(), serverNow: NOW });
    expect(p).toMatchObject({ phase: 'turn_pending', action: 'none', button: 'Getting your admission…' });
    expect(p.progress).toMatchObject({ value: 120, max: 120 });
  });

  it('a paused room keeps the place and gives no estimate', () => {
    const p = roomPanel({ room: room({ state: 'paused' }), saleState: 'active', place: place(), serverNow: NOW });
    expect(p.phase).toBe('paused');
    expect(p.title).toBe('You are in line — 19 ahead of you');
    expect(p.detail).toMatch(/paused/);
  });

  it('admitted: Buy, with a countdown of the admission on the server clock', () => {
    const admitted = place({ state: 'admitted', aheadOfYou: null, estimatedWaitSeconds: null, admissionToken: 'v1.t', admissionExpiresAt: '2026-01-01T10:05:00.000Z' });
    const p = roomPanel({ room: room({ admittedThrough: 130 }), saleState: 'active', place: admitted, drawn: true, serverNow: NOW + 1000 });
    expect(p.phase).toBe('admitted');
    expect(p.action).toBe('buy');
    expect(p.title).toBe('It’s your turn! Buy within 04:59');
    expect(p.detail).toMatch(/^Your place, drawn at opening: 120\. An item is set aside for you until Jan 1, 2026/);
    expect(p.progress).toMatchObject({ value: 120, max: 120 });
  });

  it('admitted: the countdown runs to the end of the set-aside item, when the token stops buying', () => {
    const admitted = place({
      state: 'admitted',
      aheadOfYou: null,
      estimatedWaitSeconds: null,
      admissionToken: 'v1.t',
      admissionExpiresAt: '2026-01-01T10:01:00.000Z',
      setAsideUntil: '2026-01-01T10:01:00.000Z',
    });
    const p = roomPanel({ room: room({ admittedThrough: 130 }), saleState: 'active', place: admitted, serverNow: NOW + 1000 });
    expect(p).toMatchObject({ phase: 'admitted', action: 'buy', title: 'It’s your turn! Buy within 00:59' });
    expect(p.detail).toMatch(/An item is set aside for you until Jan 1, 2026/);
    const later = roomPanel({ room: room({ admittedThrough: 130 }), saleState: 'active', place: admitted, serverNow: NOW + 60_000 });
    expect(later).toMatchObject({ phase: 'expired', action: 'none', button: 'Admission expired' });
  });

  it('an admission that ran out says so and offers nothing', () => {
    const admitted = place({ state: 'admitted', admissionToken: 'v1.t', admissionExpiresAt: '2026-01-01T10:05:00.000Z' });
    const p = roomPanel({ room: room(), saleState: 'active', place: admitted, serverNow: Date.parse('2026-01-01T10:05:00.000Z') });
    expect(p).toMatchObject({ phase: 'expired', action: 'none', title: 'Your admission expired', button: 'Admission expired' });
    // The place itself says `closed` once the admission's lifetime is over, while the sale goes on.
    expect(roomPanel({ room: room(), saleState: 'active', place: place({ state: 'closed' }), serverNow: NOW }).phase).toBe('expired');
  });

  it('sold out ends the wait at once, whatever the own place says', () => {
    for (const input of [
      { room: room({ state: 'sold_out' }), saleState: 'active' as const, place: place() },
      { room: room(), saleState: 'sold_out' as const, place: place() },
      { room: room(), saleState: 'active' as const, place: place({ state: 'sold_out' }) },
      { room: room({ state: 'sold_out' }), saleState: 'sold_out' as const, place: place({ state: 'admitted', admissionToken: 't', admissionExpiresAt: '2026-01-01T10:05:00.000Z' }) },
    ]) {
      const p = roomPanel({ ...input, serverNow: NOW });
      expect(p).toMatchObject({ phase: 'sold_out', action: 'none', title: 'Sold out — the wait is over', button: 'Sold out' });
      expect(p.detail).toBe('Every item was sold before your turn. Thank you for waiting.');
    }
    expect(roomPanel({ room: room({ state: 'sold_out' }), saleState: 'sold_out', serverNow: NOW }).detail).toBe('Every item has been sold.');
  });

  it('a closed sale ends the wait too', () => {
    const p = roomPanel({ room: room({ state: 'closed' }), saleState: 'ended', place: place(), serverNow: NOW });
    expect(p).toMatchObject({ phase: 'closed', action: 'none', title: 'The sale is closed', button: 'Sale closed' });
  });

  it('several per customer: up to that many items are set aside, and what is left of them once part is bought', () => {
    const admitted = place({ state: 'admitted', aheadOfYou: null, admissionToken: 'v1.t', admissionExpiresAt: '2026-01-01T10:05:00.000Z' });
    const input = { room: room({ admittedThrough: 130 }), saleState: 'active' as const, place: admitted, serverNow: NOW + 1000 };
    expect(roomPanel({ ...input, maxPerCustomer: 2 }).detail).toMatch(/^Your place: 120\. Up to 2 items are set aside for you until Jan 1, 2026/);
    expect(roomPanel({ ...input, maxPerCustomer: 1 }).detail).toMatch(/^Your place: 120\. An item is set aside for you until Jan 1, 2026/);
    const part = roomPanel({ ...input, maxPerCustomer: 3, held: 1 });
    expect(part).toMatchObject({ phase: 'admitted', action: 'buy' });
    expect(part.detail).toMatch(/You hold 1 of 3: up to 2 more are set aside for you until/);
    expect(setAsideText(1)).toBe('An item is set aside for you');
    expect(setAsideText(4)).toBe('Up to 4 items are set aside for you');
    expect(setAsideText(2, 1)).toBe('You hold 1 of 2: up to 1 more is set aside for you');
    // The limit bought: the admission is used.
    expect(roomPanel({ ...input, maxPerCustomer: 2, held: 2, bought: true })).toMatchObject({
      phase: 'bought',
      title: 'You have your items',
      detail: 'You hold 2 of the 2 items allowed per customer; your place in line is used.',
    });
    // Part bought when the admission ran out: what was bought is what there is.
    const over = roomPanel({ ...input, maxPerCustomer: 2, held: 1, serverNow: Date.parse('2026-01-01T10:05:00.000Z') });
    expect(over).toMatchObject({ phase: 'bought', title: 'You have your item', action: 'none' });
    expect(roomPanel({ ...input, maxPerCustomer: 2, held: 0, serverNow: Date.parse('2026-01-01T10:05:00.000Z') }).phase).toBe('expired');
  });

  it('after the order, says so', () => {
    const p = roomPanel({ room: room({ state: 'sold_out' }), saleState: 'sold_out', place: place({ state: 'admitted' }), bought: true, serverNow: NOW });
    expect(p).toMatchObject({ phase: 'bought', action: 'none' });
  });
});

describe('room helpers', () => {
  it('estimates the wait in seconds, then minutes', () => {
    expect(waitText(0)).toBe('about 1 s');
    expect(waitText(9.5)).toBe('about 10 s');
    expect(waitText(119)).toBe('about 119 s');
    expect(waitText(600)).toBe('about 10 min');
  });

  it('progress never passes the place nor goes below nothing', () => {
    expect(placeProgress(10, 25)).toMatchObject({ value: 10, max: 10 });
    expect(placeProgress(10, -3)).toMatchObject({ value: 0, max: 10, text: 'Admitted up to place 0 · your place 10' });
  });

  it('counts the admission down on the server clock and never below zero', () => {
    const exp = '2026-01-01T10:00:30.000Z';
    expect(admissionLeftMs(exp, NOW)).toBe(30_000);
    expect(admissionCountdown(exp, NOW + 200)).toBe('Buy within 00:30');
    expect(admissionCountdown(exp, NOW + 60_000)).toBe('Buy within 00:00');
    expect(admissionLeftMs(undefined, NOW)).toBe(0);
    expect(admissionLeftMs('soon', NOW)).toBe(0);
  });

  it('asks for the own place when the status says it is admitted, near its turn while admission moves, after the draw, and on the safety poll', () => {
    const ask = (over: Partial<PlaceAskInput> = {}) =>
      shouldAskPlace({ room: room(), place: place(), now: NOW, lastAskAt: NOW - 5000, admittedAtAsk: 100, jitter: 0, ...over });
    // Place 120, admitted through 100 at 2/s: far from its turn (horizon 4 places), nothing moved.
    expect(ask()).toBe(false);
    expect(ask({ room: room({ admittedThrough: 120 }) })).toBe(true); // admitted: the token
    expect(ask({ room: room({ admittedThrough: 120 }), lastAskAt: NOW - 500 })).toBe(false); // at most once a second
    expect(ask({ room: room({ admittedThrough: 117 }) })).toBe(true); // near its turn, the range moved
    expect(ask({ room: room({ admittedThrough: 117 }), admittedAtAsk: 117 })).toBe(false); // ... it did not
    expect(ask({ room: room({ admittedThrough: 117, state: 'paused' }) })).toBe(false);
    expect(ask({ room: room({ admittedThrough: 120, state: 'paused' }) })).toBe(true);
    // The safety poll: half to all of a minute after the last ask, by the page's jitter.
    expect(ask({ lastAskAt: NOW - PLACE_ASK.safetyMs / 2 })).toBe(true);
    expect(ask({ lastAskAt: NOW - PLACE_ASK.safetyMs / 2, jitter: 0.5 })).toBe(false);
    expect(ask({ lastAskAt: NOW - PLACE_ASK.safetyMs, jitter: 0.99 })).toBe(true);
    // The pre-queue: nothing to ask until the draw is done, then once, spread by the jitter.
    const drawn = { place: place({ position: null, aheadOfYou: null }), lastAskAt: NOW - 600_000 };
    expect(ask({ ...drawn, room: room({ state: 'prequeue' }) })).toBe(false);
    expect(ask({ ...drawn, room: room({ state: 'drawing' }) })).toBe(false);
    expect(ask({ ...drawn, drawSeenAt: NOW })).toBe(true); // 40 in line: no spread to speak of
    const crowd = room({ length: 50_000 });
    expect(drawReadDelayMs(crowd, 0.5)).toBe(2500); // half of 50,000 / 10,000 per second
    expect(drawReadDelayMs(room({ length: 10_000_000 }), 1)).toBe(PLACE_ASK.drawSpreadMaxMs);
    expect(ask({ ...drawn, room: crowd, drawSeenAt: NOW - 2000, jitter: 0.5 })).toBe(false);
    expect(ask({ ...drawn, room: crowd, drawSeenAt: NOW - 2500, jitter: 0.5 })).toBe(true);
    expect(ask({ ...drawn, room: crowd, drawSeenAt: NOW - 9000, lastAskAt: NOW - 2000 })).toBe(false); // asked since
    // A reload: once at once, then every few seconds until an answer comes.
    expect(ask({ place: undefined, lastAskAt: -Infinity })).toBe(true);
    expect(ask({ place: undefined, lastAskAt: NOW - 2000 })).toBe(false);
    // Nothing to wait for.
    expect(ask({ room: room({ admittedThrough: 500 }), place: place({ state: 'admitted' }) })).toBe(false);
    expect(ask({ room: room({ state: 'sold_out', admittedThrough: 500 }) })).toBe(false);
    expect(ask({ room: room({ state: 'closed' }), lastAskAt: -Infinity, place: undefined })).toBe(false);
  });

  it('keeps 10,000 waiting pages under 3 × admitPerSecond + crowd / 30 requests a second, and every admitted page gets its token', () => {
    // A scripted timeline: 10,000 pages, 5,000 joined before opening (drawn at random at 0 s),
    // 5,000 joining over the first 10 s. The server admits 50/s from 0 s, pauses from 60 s to
    // 70 s, and the stock runs out at 180 s. Each page polls the status every second at its own
    // phase; the CDN serves a copy at most a second old. Pages follow `shouldAskPlace`, and an
    // own-place answer is the server's truth at that moment.
    const N = 10_000;
    const RATE = 50;
    const SOLD_OUT_S = 180;
    let seed = 42;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const order = Array.from({ length: 5000 }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const drawnPlace = new Map(order.map((page, k) => [page, k + 1]));
    const joinAt = (i: number) => (i < 5000 ? -60_000 : Math.floor(((i - 5000) / 5000) * 10_000));
    const placeOf = (i: number) => (i < 5000 ? drawnPlace.get(i)! : 5000 + (i - 5000) + 1);
    const admittedAt = (ms: number) => {
      const s = Math.max(0, ms) / 1000;
      const moving = s < 60 ? s : s < 70 ? 60 : s - 10;
      return Math.min(N, Math.floor(moving * RATE));
    };
    const stateAt = (ms: number): RoomView['state'] =>
      ms < 0 ? 'prequeue' : ms >= SOLD_OUT_S * 1000 ? 'sold_out' : ms >= 60_000 && ms < 70_000 ? 'paused' : 'admitting';
    const joinedAt = (ms: number) => (ms < 0 ? 5000 : 5000 + Math.min(5000, Math.floor((ms / 10_000) * 5000) + 1));
    const status = (ms: number): RoomView => {
      const cached = Math.floor(ms / 1000) * 1000; // the CDN's copy, fetched at the start of each second
      const admitted = admittedAt(cached);
      return room({ state: stateAt(cached), admittedThrough: admitted, admitPerSecond: RATE, length: joinedAt(cached) - admitted });
    };
    const truth = (i: number, ms: number): PlaceView => {
      const p = ms < 0 && i < 5000 ? null : placeOf(i);
      if (stateAt(ms) === 'sold_out') return place({ state: 'sold_out', position: p, aheadOfYou: null });
      if (p !== null && p <= admittedAt(ms)) return place({ state: 'admitted', position: p, aheadOfYou: 0, admissionToken: `t${i}` });
      return place({ position: p, aheadOfYou: p === null ? null : Math.max(0, p - admittedAt(ms) - 1) });
    };
    interface Page {
      phase: number;
      jitter: number;
      place?: PlaceView;
      lastAskAt: number;
      admittedAtAsk: number;
      drawSeenAt?: number;
      tokenAt?: number;
    }
    const pages: Page[] = Array.from({ length: N }, () => ({ phase: Math.floor(rand() * 1000), jitter: rand(), lastAskAt: -Infinity, admittedAtAsk: 0 }));
    const perSecond = new Map<number, number>();
    const count = (ms: number) => perSecond.set(Math.floor(ms / 1000), (perSecond.get(Math.floor(ms / 1000)) ?? 0) + 1);
    let joins = 0;
    const END = 200_000;
    for (let s = -1; s * 1000 < END; s++) {
      for (let i = 0; i < N; i++) {
        const pg = pages[i];
        const t = s * 1000 + pg.phase;
        if (t < joinAt(i)) continue;
        if (pg.lastAskAt === -Infinity) {
          // The join's answer carries the place (null in the pre-queue).
          pg.place = truth(i, joinAt(i));
          pg.lastAskAt = joinAt(i);
          pg.admittedAtAsk = status(joinAt(i)).admittedThrough;
          if (joinAt(i) >= 0) {
            joins++;
            count(joinAt(i));
          }
        }
        const r = status(t);
        if (pg.drawSeenAt === undefined && pg.place?.position === null && r.state !== 'prequeue') pg.drawSeenAt = t;
        const input = { room: r, place: pg.place, now: t, lastAskAt: pg.lastAskAt, admittedAtAsk: pg.admittedAtAsk, drawSeenAt: pg.drawSeenAt, jitter: pg.jitter };
        if (!shouldAskPlace(input)) continue;
        count(t);
        pg.place = truth(i, t);
        pg.lastAskAt = t;
        pg.admittedAtAsk = r.admittedThrough;
        if (pg.place.admissionToken && pg.tokenAt === undefined) pg.tokenAt = t;
      }
    }
    // The bound, per second from the end of the joins and the draw's reads on: the status's fetch,
    // 3 × admitPerSecond, and the safety asks (each page at most once per 30 s).
    const bound = 1 + 3 * RATE + N / 30;
    const steady = [...perSecond].filter(([s]) => s >= 12 && s < SOLD_OUT_S);
    expect(steady.length).toBeGreaterThan(150);
    for (const [s, n] of steady) expect(n, `second ${s}`).toBeLessThanOrEqual(bound);
    // The first 12 s add the joins (500/s here) and the drawn places' reads (5,000 over ≤ 0.5 s at
    // 10,000/s): nothing beyond them.
    const drawReads = 5000;
    const early = [...perSecond].filter(([s]) => s < 12).reduce((a, [, n]) => a + n, 0);
    expect(early).toBeLessThanOrEqual(12 * (1 + 3 * RATE + N / 30) + joins + drawReads);
    // The former rule, one ask every 5 s per page, would be N / 5 = 2,000 a second: over the bound.
    expect(N / 5).toBeGreaterThan(bound);
    // Every place admitted before the sell-out got its token within two seconds of its admission.
    for (let i = 0; i < N; i++) {
      const p = placeOf(i);
      const admittedMs = [...Array(SOLD_OUT_S).keys()].map((s) => s * 1000).find((ms) => admittedAt(ms) >= p);
      if (admittedMs === undefined || admittedMs + 2000 >= SOLD_OUT_S * 1000) continue;
      expect(pages[i].tokenAt, `page ${i} place ${p}`).toBeDefined();
      expect(pages[i].tokenAt! - Math.max(admittedMs, joinAt(i))).toBeLessThanOrEqual(2000);
    }
  });

  it('describes the room on a sale card', () => {
    expect(roomNote(room({ state: 'prequeue' }))).toMatch(/join the line now/);
    expect(roomNote(room())).toBe('Waiting room · 40 in line · join the line');
    expect(roomNote(room({ state: 'sold_out' }))).toBe('');
  });
});

describe('waiting-room messages', () => {
  it('says when the room opens, or that it is busy', () => {
    expect(joinFailureMessage(problem({ code: 'queue_not_open', opensAt: '2030-01-02T09:00:00.000Z' })).title).toBe('The line is not open yet');
    const busy = joinFailureMessage(problem({ status: 503, code: 'temporarily_unavailable', retryAfterSeconds: 2 }));
    expect(busy.detail).toBe('You are not in line yet. Try again in 2 seconds.');
    expect(joinFailureMessage({ ok: false, kind: 'network', timedOut: false }).title).toBe('Could not reach the shop');
  });

  it('explains every admission refusal of an order', () => {
    expect(purchaseMessage(problem({ code: 'admission_required' })).title).toBe('Join the line first');
    expect(purchaseMessage(problem({ code: 'admission_invalid', detail: 'the admission token has expired' })).title).toBe('Your admission expired');
    expect(purchaseMessage(problem({ code: 'admission_invalid', detail: 'the admission token is not valid for this sale and buyer' })).title).toBe(
      'Your admission is not valid here',
    );
    expect(purchaseMessage(problem({ code: 'not_yet_admitted' })).title).toBe('It is not your turn yet');
  });
});

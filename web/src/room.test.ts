import { describe, expect, it } from 'vitest';

import type { PlaceView, Problem, Result, RoomView } from './api';
import { purchaseMessage } from './format';
import {
  admissionCountdown,
  admissionLeftMs,
  admittedThrough,
  joinFailureMessage,
  placeNeedsPollNow,
  roomPanel,
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
    expect(p.action).toBe('none');
    expect(p.progress).toBeUndefined();
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

  it('asks for the own place at once when the status says it is admitted or the draw is done', () => {
    expect(placeNeedsPollNow(room({ admittedThrough: 119 }), place())).toBe(false);
    expect(placeNeedsPollNow(room({ admittedThrough: 120 }), place())).toBe(true);
    expect(placeNeedsPollNow(room({ state: 'prequeue' }), place({ position: null }))).toBe(false);
    expect(placeNeedsPollNow(room({ state: 'drawing' }), place({ position: null }))).toBe(false);
    expect(placeNeedsPollNow(room(), place({ position: null }))).toBe(true);
    expect(placeNeedsPollNow(room({ admittedThrough: 500 }), place({ state: 'admitted' }))).toBe(false);
    expect(placeNeedsPollNow(room({ admittedThrough: 500 }), undefined)).toBe(false);
    expect(placeNeedsPollNow(room({ state: 'sold_out', admittedThrough: 500 }), place())).toBe(false);
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

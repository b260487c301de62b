import { describe, expect, it } from 'vitest';

import type { LineView, Problem, Result, RoomView } from './api';
import { purchaseMessage } from './format';
import {
  admissionCountdown,
  admissionLeftMs,
  admittedThrough,
  joinFailureMessage,
  lineNeedsPollNow,
  linePanel,
  lineProgress,
  roomNote,
  waitText,
} from './line';

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

const line = (over: Partial<LineView> = {}): LineView => ({
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

describe('the line panel', () => {
  it('offers to join when this browser has not joined', () => {
    const p = linePanel({ room: room({ state: 'prequeue' }), saleState: 'upcoming', serverNow: NOW });
    expect(p.phase).toBe('join');
    expect(p.action).toBe('join');
    expect(p.button).toBe('Join the line');
    expect(p.detail).toMatch(/drawn at random at opening/);
    const later = linePanel({ room: room({ length: 1 }), saleState: 'active', serverNow: NOW });
    expect(later.detail).toBe('1 person is waiting. Join to get the next place.');
  });

  it('counts down to the opening of the line, with Join disabled until then', () => {
    const r = room({ state: 'not_open', prequeueOpensAt: '2026-01-01T10:00:05.000Z' });
    const p = linePanel({ room: r, saleState: 'upcoming', serverNow: NOW });
    expect(p).toMatchObject({ phase: 'not_open', action: 'none', title: 'The line opens in 00:05' });
    // The server's clock passed the opening; the cached status has not caught up yet.
    expect(linePanel({ room: r, saleState: 'upcoming', serverNow: NOW + 5000 }).action).toBe('join');
  });

  it('after a reload, finds the place before offering anything', () => {
    const p = linePanel({ room: room(), saleState: 'active', joinedAs: 'dana', serverNow: NOW });
    expect(p).toMatchObject({ phase: 'finding', action: 'none' });
  });

  it('in the pre-queue, says that places are drawn at opening and shows the commitment', () => {
    const p = linePanel({ room: room({ state: 'prequeue' }), saleState: 'upcoming', line: line({ position: null, aheadOfYou: null, estimatedWaitSeconds: null }), serverNow: NOW });
    expect(p.phase).toBe('prequeue');
    expect(p.title).toBe('You are in the pre-queue: places are drawn at opening');
    expect(p.detail).toContain(`The draw can be verified: commitment ${COMMITMENT}`);
    expect(p.action).toBe('none');
    expect(p.progress).toBeUndefined();
  });

  it('after the start and before the place is known, says the draw is under way', () => {
    const pre = line({ position: null, aheadOfYou: null, estimatedWaitSeconds: null });
    expect(linePanel({ room: room({ state: 'drawing' }), saleState: 'active', line: pre, serverNow: NOW }).phase).toBe('drawing');
    expect(linePanel({ room: room(), saleState: 'active', line: pre, serverNow: NOW }).phase).toBe('drawing');
  });

  it('while waiting, says how many are ahead and about how long, with the drawn place', () => {
    const p = linePanel({ room: room(), saleState: 'active', line: line(), drawn: true, serverNow: NOW });
    expect(p.phase).toBe('waiting');
    expect(p.title).toBe('You are in line — 19 ahead of you, about 10 s');
    expect(p.detail).toMatch(/^Your place, drawn at opening: 120\./);
    expect(p.progress).toEqual({ value: 100, max: 120, text: 'Admitted up to place 100 · your place 120' });
    expect(linePanel({ room: room(), saleState: 'active', line: line(), serverNow: NOW }).detail).toMatch(/^Your place: 120\./);
  });

  it('follows the cached status between polls of the own place', () => {
    // The status moved on to 110 since the shopper's own answer (which implied 100).
    const p = linePanel({ room: room({ admittedThrough: 110 }), saleState: 'active', line: line(), serverNow: NOW });
    expect(p.title).toBe('You are in line — 9 ahead of you, about 5 s');
    expect(p.progress?.value).toBe(110);
    // A status older than the own answer does not move the shopper back.
    expect(admittedThrough(room({ admittedThrough: 90 }), line())).toBe(100);
  });

  it('when the status says it is this place’s turn, waits for the token without offering Buy', () => {
    const p = linePanel({ room: room({ admittedThrough: 120 }), saleState: 'active', line: line(), serverNow: NOW });
    expect(p).toMatchObject({ phase: 'turn_pending', action: 'none', button: 'Getting your admission…' });
    expect(p.progress).toMatchObject({ value: 120, max: 120 });
  });

  it('a paused line keeps the place and gives no estimate', () => {
    const p = linePanel({ room: room({ state: 'paused' }), saleState: 'active', line: line(), serverNow: NOW });
    expect(p.phase).toBe('paused');
    expect(p.title).toBe('You are in line — 19 ahead of you');
    expect(p.detail).toMatch(/paused/);
  });

  it('admitted: Buy, with a countdown of the admission on the server clock', () => {
    const admitted = line({ state: 'admitted', aheadOfYou: null, estimatedWaitSeconds: null, admissionToken: 'v1.t', admissionExpiresAt: '2026-01-01T10:05:00.000Z' });
    const p = linePanel({ room: room({ admittedThrough: 130 }), saleState: 'active', line: admitted, drawn: true, serverNow: NOW + 1000 });
    expect(p.phase).toBe('admitted');
    expect(p.action).toBe('buy');
    expect(p.title).toBe('It’s your turn! Buy within 04:59');
    expect(p.detail).toMatch(/^Your place, drawn at opening: 120\. An item is set aside for you until Jan 1, 2026/);
    expect(p.progress).toMatchObject({ value: 120, max: 120 });
  });

  it('admitted: the countdown runs to the end of the set-aside item, then Buy stays while stock lasts', () => {
    const admitted = line({
      state: 'admitted',
      aheadOfYou: null,
      estimatedWaitSeconds: null,
      admissionToken: 'v1.t',
      admissionExpiresAt: '2026-01-01T10:05:00.000Z',
      setAsideUntil: '2026-01-01T10:01:00.000Z',
    });
    const p = linePanel({ room: room({ admittedThrough: 130 }), saleState: 'active', line: admitted, serverNow: NOW + 1000 });
    expect(p).toMatchObject({ phase: 'admitted', action: 'buy', title: 'It’s your turn! Buy within 00:59' });
    expect(p.detail).toMatch(/An item is set aside for you until Jan 1, 2026/);
    const later = linePanel({ room: room({ admittedThrough: 130 }), saleState: 'active', line: admitted, serverNow: NOW + 61_000 });
    expect(later).toMatchObject({ phase: 'admitted', action: 'buy', button: 'Buy now' });
    expect(later.title).toBe('It’s still your turn — buy while stock lasts (03:59 left)');
    expect(later.detail).toMatch(/released at .*valid until/);
  });

  it('an admission that ran out says so and offers nothing', () => {
    const admitted = line({ state: 'admitted', admissionToken: 'v1.t', admissionExpiresAt: '2026-01-01T10:05:00.000Z' });
    const p = linePanel({ room: room(), saleState: 'active', line: admitted, serverNow: Date.parse('2026-01-01T10:05:00.000Z') });
    expect(p).toMatchObject({ phase: 'expired', action: 'none', title: 'Your admission expired', button: 'Admission expired' });
    // The line itself says `closed` once the admission's lifetime is over, while the sale goes on.
    expect(linePanel({ room: room(), saleState: 'active', line: line({ state: 'closed' }), serverNow: NOW }).phase).toBe('expired');
  });

  it('sold out ends the wait at once, whatever the own place says', () => {
    for (const input of [
      { room: room({ state: 'sold_out' }), saleState: 'active' as const, line: line() },
      { room: room(), saleState: 'sold_out' as const, line: line() },
      { room: room(), saleState: 'active' as const, line: line({ state: 'sold_out' }) },
      { room: room({ state: 'sold_out' }), saleState: 'sold_out' as const, line: line({ state: 'admitted', admissionToken: 't', admissionExpiresAt: '2026-01-01T10:05:00.000Z' }) },
    ]) {
      const p = linePanel({ ...input, serverNow: NOW });
      expect(p).toMatchObject({ phase: 'sold_out', action: 'none', title: 'Sold out — the wait is over', button: 'Sold out' });
      expect(p.detail).toBe('Every item was sold before your turn. Thank you for waiting.');
    }
    expect(linePanel({ room: room({ state: 'sold_out' }), saleState: 'sold_out', serverNow: NOW }).detail).toBe('Every item has been sold.');
  });

  it('a closed sale ends the wait too', () => {
    const p = linePanel({ room: room({ state: 'closed' }), saleState: 'ended', line: line(), serverNow: NOW });
    expect(p).toMatchObject({ phase: 'closed', action: 'none', title: 'The sale is closed', button: 'Sale closed' });
  });

  it('after the order, says so', () => {
    const p = linePanel({ room: room({ state: 'sold_out' }), saleState: 'sold_out', line: line({ state: 'admitted' }), bought: true, serverNow: NOW });
    expect(p).toMatchObject({ phase: 'bought', action: 'none' });
  });
});

describe('line helpers', () => {
  it('estimates the wait in seconds, then minutes', () => {
    expect(waitText(0)).toBe('about 1 s');
    expect(waitText(9.5)).toBe('about 10 s');
    expect(waitText(119)).toBe('about 119 s');
    expect(waitText(600)).toBe('about 10 min');
  });

  it('progress never passes the place nor goes below nothing', () => {
    expect(lineProgress(10, 25)).toMatchObject({ value: 10, max: 10 });
    expect(lineProgress(10, -3)).toMatchObject({ value: 0, max: 10, text: 'Admitted up to place 0 · your place 10' });
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
    expect(lineNeedsPollNow(room({ admittedThrough: 119 }), line())).toBe(false);
    expect(lineNeedsPollNow(room({ admittedThrough: 120 }), line())).toBe(true);
    expect(lineNeedsPollNow(room({ state: 'prequeue' }), line({ position: null }))).toBe(false);
    expect(lineNeedsPollNow(room({ state: 'drawing' }), line({ position: null }))).toBe(false);
    expect(lineNeedsPollNow(room(), line({ position: null }))).toBe(true);
    expect(lineNeedsPollNow(room({ admittedThrough: 500 }), line({ state: 'admitted' }))).toBe(false);
    expect(lineNeedsPollNow(room({ admittedThrough: 500 }), undefined)).toBe(false);
    expect(lineNeedsPollNow(room({ state: 'sold_out', admittedThrough: 500 }), line())).toBe(false);
  });

  it('describes the room on a sale card', () => {
    expect(roomNote(room({ state: 'prequeue' }))).toMatch(/join the line now/);
    expect(roomNote(room())).toBe('Waiting room · 40 in line · join the line');
    expect(roomNote(room({ state: 'sold_out' }))).toBe('');
  });
});

describe('waiting-room messages', () => {
  it('says when the line opens, or that it is busy', () => {
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

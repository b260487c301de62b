import { describe, expect, it } from 'vitest';

import { type Purchase, type Result, toProblem } from './api';
import { busyMessage, purchaseMessage } from './format';
import { BASE_DELAY_MS, MAX_AUTO_RETRIES, MAX_DELAY_MS, isRetryable, newIdempotencyKey, pressBuy, retryDelayMs } from './retry';

const order: Purchase = { saleId: 'demo', userId: 'alice', orderId: '01JORDER', purchasedAt: '2026-01-01T10:01:00.000Z', status: 'confirmed' };
const created: Result<Purchase> = { ok: true, status: 201, value: order, ageSeconds: 0, receivedAt: 0 };
const problem = (status: number, code: string, retryAfterSeconds?: number): Result<Purchase> => ({
  ok: false,
  kind: 'problem',
  problem: { status, code, retryAfterSeconds },
});
const throttled = problem(429, 'too_many_requests');
const busy = (secs?: number) => problem(503, 'temporarily_unavailable', secs);
const offline: Result<Purchase> = { ok: false, kind: 'network', timedOut: false };
const timedOut: Result<Purchase> = { ok: false, kind: 'network', timedOut: true };

/** A press against scripted answers; records the keys sent and the waits asked for. */
async function press(answers: Result<Purchase>[], random = () => 0.5) {
  const keys: string[] = [];
  const waits: number[] = [];
  let n = 0;
  const outcome = await pressBuy({
    send: async (key) => {
      keys.push(key);
      return answers[Math.min(n++, answers.length - 1)];
    },
    wait: async (ms) => {
      waits.push(ms);
      return true;
    },
    random,
  });
  return { outcome, keys, waits };
}

describe('Idempotency-Key', () => {
  it('is a fresh UUID for every press', () => {
    const [a, b] = [newIdempotencyKey(), newIdempotencyKey()];
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
  });
  it('is the same on every automatic retry of one press', async () => {
    const { outcome, keys } = await press([throttled, busy(1), offline, created]);
    expect(outcome.result).toBe(created);
    expect(keys).toHaveLength(4);
    expect(new Set(keys).size).toBe(1);
    expect(outcome.idempotencyKey).toBe(keys[0]);
  });
  it('differs between two presses', async () => {
    const first = await press([created]);
    const second = await press([created]);
    expect(first.keys[0]).not.toBe(second.keys[0]);
  });
});

describe('automatic retries', () => {
  it('follow 429, 503 and network failures, not outcomes', () => {
    for (const r of [throttled, busy(1), offline, timedOut]) expect(isRetryable(r)).toBe(true);
    for (const r of [created, problem(409, 'sold_out'), problem(409, 'already_purchased'), problem(400, 'invalid_request'), problem(500, 'internal_error')]) {
      expect(isRetryable(r)).toBe(false);
    }
  });
  it('stop at the first outcome', async () => {
    const { outcome, waits } = await press([throttled, problem(409, 'sold_out'), created]);
    expect(outcome.result).toEqual(problem(409, 'sold_out'));
    expect(outcome.attempts).toBe(2);
    expect(waits).toHaveLength(1);
  });
  it('are bounded, and then the last failure is the answer', async () => {
    const { outcome, waits, keys } = await press([offline]);
    expect(keys).toHaveLength(1 + MAX_AUTO_RETRIES);
    expect(waits).toHaveLength(MAX_AUTO_RETRIES);
    expect(outcome.result).toBe(offline);
  });
  it('stop when the page is left', async () => {
    let sent = 0;
    const outcome = await pressBuy({ send: async () => (sent++, throttled), wait: async () => false });
    expect(sent).toBe(1);
    expect(outcome.result).toBe(throttled);
  });
  it('do not wait out a Retry-After longer than the cap', async () => {
    const { outcome, waits } = await press([busy(30), created]);
    expect(waits).toEqual([]);
    expect(outcome.result).toEqual(busy(30));
  });
});

describe('backoff', () => {
  it('is full jitter below a doubling ceiling, capped', () => {
    expect(retryDelayMs(0, undefined, () => 0)).toBe(0);
    expect(retryDelayMs(0, undefined, () => 0.999)).toBeLessThan(BASE_DELAY_MS);
    expect(retryDelayMs(2, undefined, () => 0.5)).toBe(2 * BASE_DELAY_MS);
    expect(retryDelayMs(20, undefined, () => 0.999)).toBeLessThan(MAX_DELAY_MS);
    const spread = new Set(Array.from({ length: 50 }, () => retryDelayMs(3)));
    expect(spread.size).toBeGreaterThan(10);
  });
  it('never retries before Retry-After', () => {
    expect(retryDelayMs(0, 2, () => 0)).toBe(2000);
    expect(retryDelayMs(1, 2, () => 0.5)).toBe(2500);
    expect(retryDelayMs(5, 7, () => 0.999)).toBe(MAX_DELAY_MS);
    expect(retryDelayMs(0, 9, () => 0)).toBeUndefined();
  });
  it('waits as the backoff says between attempts', async () => {
    const { waits } = await press([busy(1), throttled, offline, created], () => 0.5);
    expect(waits).toEqual([1000 + BASE_DELAY_MS / 2, BASE_DELAY_MS, 2 * BASE_DELAY_MS]);
  });
});

describe('messages', () => {
  it('count down while a press waits for its retry', () => {
    expect(busyMessage(3).title).toBe('Busy — trying again in 3 s');
    expect(busyMessage(0.2).title).toBe('Busy — trying again in 1 s');
    expect(busyMessage(3).tone).toBe('warning');
  });
  it('say the order is not confirmed when the shop stays busy', () => {
    expect(purchaseMessage(throttled)).toMatchObject({ title: 'The shop is very busy', detail: 'Your order is not confirmed. Try again in 1 second.' });
    expect(purchaseMessage(busy(3)).detail).toBe('Your order is not confirmed. Try again in 3 seconds.');
  });
  it('read API Gateway\'s 429 body, which is not problem+json', () => {
    const resp = new Response('{"message":"Too Many Requests"}', { status: 429, headers: { 'Retry-After': '2' } });
    expect(toProblem(resp, { message: 'Too Many Requests' })).toEqual({
      status: 429,
      code: 'too_many_requests',
      detail: undefined,
      purchase: undefined,
      startsAt: undefined,
      retryAfterSeconds: 2,
    });
    const noHeader = new Response('', { status: 429 });
    const bare = toProblem(noHeader, { message: 'Too Many Requests' });
    expect(bare.code).toBe('too_many_requests');
    expect(bare).not.toHaveProperty('retryAfterSeconds');
  });
});

// One press of Buy, retried by itself when the shop is busy: the same Idempotency-Key on every
// attempt, so a retry of an order that did go through answers with that order, not a second one.

import type { Purchase, Result } from './api';

/** Automatic retries after the first attempt of one press. */
export const MAX_AUTO_RETRIES = 3;
/** Ceiling of the first retry's random delay; it doubles per retry up to MAX_DELAY_MS. */
export const BASE_DELAY_MS = 500;
/** No automatic retry waits longer; a longer Retry-After is left to the shopper. */
export const MAX_DELAY_MS = 8000;

/** A fresh key for one press of Buy. */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}

/**
 * Whether the page may send the same press again by itself: throttled (429, API Gateway or WAF),
 * busy or unsure of the outcome (503), or no answer at all (network error, timeout). Every other
 * answer is the outcome.
 */
export function isRetryable(result: Result<unknown>): boolean {
  if (result.ok) return false;
  if (result.kind === 'network') return true;
  return result.problem.status === 429 || result.problem.status === 503;
}

/**
 * How long to wait before retry number `attempt + 1` (attempt counts from 0): full jitter, a
 * random time below min(MAX_DELAY_MS, BASE_DELAY_MS · 2^attempt), so a crowd that was refused
 * together does not come back together. Retry-After is a floor: the jitter goes on top of it.
 * Undefined when Retry-After asks for more than MAX_DELAY_MS: no automatic retry then.
 */
export function retryDelayMs(attempt: number, retryAfterSeconds?: number, random: () => number = Math.random): number | undefined {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  const jitter = Math.floor(random() * ceiling);
  if (retryAfterSeconds === undefined) return jitter;
  const floor = retryAfterSeconds * 1000;
  if (floor > MAX_DELAY_MS) return undefined;
  return Math.min(MAX_DELAY_MS, floor + jitter);
}

export interface PressHooks {
  /** Sends the order with this Idempotency-Key. */
  send(idempotencyKey: string): Promise<Result<Purchase>>;
  /** Waits `ms` before retry number `retry` (1-based); resolves false to give up (page left). */
  wait(ms: number, retry: number): Promise<boolean>;
  random?: () => number;
  newKey?: () => string;
}

export interface PressOutcome {
  result: Result<Purchase>;
  idempotencyKey: string;
  attempts: number;
}

/** One press of Buy: the first attempt and at most MAX_AUTO_RETRIES retries, all with one key. */
export async function pressBuy(hooks: PressHooks): Promise<PressOutcome> {
  const idempotencyKey = (hooks.newKey ?? newIdempotencyKey)();
  let attempts = 0;
  for (;;) {
    const result = await hooks.send(idempotencyKey);
    attempts += 1;
    const done = { result, idempotencyKey, attempts };
    if (!isRetryable(result) || attempts > MAX_AUTO_RETRIES) return done;
    const retryAfter = !result.ok && result.kind === 'problem' ? result.problem.retryAfterSeconds : undefined;
    const delay = retryDelayMs(attempts - 1, retryAfter, hooks.random);
    if (delay === undefined || !(await hooks.wait(delay, attempts))) return done;
  }
}

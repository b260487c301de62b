import { describe, expect, it } from 'vitest';

import type { Problem, Purchase, Result, SaleStatus } from './api';
import { apiBase, tokenSubject } from './config';
import {
  buyBlockedReason,
  clockOffset,
  countdownText,
  formatDuration,
  formatPrice,
  formatWindow,
  lookupMessage,
  purchaseMessage,
  stateAt,
} from './format';

const sale: SaleStatus = {
  saleId: 'demo',
  name: 'Demo',
  priceCents: 4999,
  currency: 'EUR',
  state: 'active',
  totalStock: 100,
  remainingStock: 7,
  startsAt: '2026-01-01T10:00:00.000Z',
  endsAt: '2026-01-01T11:00:00.000Z',
  serverTime: '2026-01-01T10:30:00.000Z',
};
const at = (iso: string) => Date.parse(iso);
const purchase: Purchase = { saleId: 'demo', userId: 'alice', orderId: '01JORDER', purchasedAt: '2026-01-01T10:01:00.000Z', status: 'confirmed' };
const problem = (code: string, extra: Partial<Problem> = {}): Result<Purchase> => ({
  ok: false,
  kind: 'problem',
  problem: { status: 409, code, ...extra },
});

describe('prices', () => {
  it('use the currency minor unit', () => {
    expect(formatPrice(4999, 'EUR', 'en-US')).toBe('€49.99');
    expect(formatPrice(4999, 'JPY', 'en-US')).toBe('¥4,999');
  });
  it('survive an unknown currency code', () => {
    expect(formatPrice(100, 'XX', 'en-US')).toBe('1.00 XX');
  });
});

describe('countdowns', () => {
  it('format minutes, hours and days', () => {
    expect(formatDuration(65_000)).toBe('01:05');
    expect(formatDuration(3_600_000)).toBe('01:00:00');
    expect(formatDuration(90_061_000)).toBe('1d 01:01:01');
    expect(formatDuration(200)).toBe('00:01');
    expect(formatDuration(-5)).toBe('00:00');
  });
  it('follow the server clock, not the local one', () => {
    expect(clockOffset('2026-01-01T10:30:00.000Z', at('2026-01-01T08:30:00.000Z'))).toBe(7_200_000);
    expect(clockOffset('2026-01-01T10:30:00.000Z', at('2026-01-01T10:30:00.000Z'), 1)).toBe(1000);
    expect(clockOffset('garbage', 5)).toBe(0);
  });
  it('count to the start, then to the end', () => {
    expect(countdownText(sale, at('2026-01-01T09:59:00.000Z'))).toBe('Starts in 01:00');
    expect(countdownText(sale, at('2026-01-01T10:00:00.000Z'))).toBe('Ends in 01:00:00');
    expect(countdownText(sale, at('2026-01-01T11:00:00.000Z'))).toBe('This sale has ended');
  });
});

describe('sale windows', () => {
  it('name the date once when start and end share it', () => {
    const same = formatWindow('2026-01-01T10:00:00Z', '2026-01-01T11:00:00Z', 'en-US');
    expect(same.match(/2026/g)).toHaveLength(1);
    const apart = formatWindow('2026-01-01T10:00:00Z', '2026-03-01T11:00:00Z', 'en-US');
    expect(apart.match(/2026/g)).toHaveLength(2);
  });
});

describe('sale state', () => {
  it('comes from the window and the stock', () => {
    expect(stateAt(sale, at('2026-01-01T09:59:59.999Z'))).toBe('upcoming');
    expect(stateAt(sale, at('2026-01-01T10:00:00.000Z'))).toBe('active');
    expect(stateAt({ ...sale, remainingStock: 0 }, at('2026-01-01T10:30:00.000Z'))).toBe('sold_out');
    expect(stateAt(sale, at('2026-01-01T11:00:00.000Z'))).toBe('ended');
  });
  it('explains a disabled Buy button', () => {
    expect(buyBlockedReason('active')).toBe('');
    for (const s of ['upcoming', 'sold_out', 'ended'] as const) expect(buyBlockedReason(s)).not.toBe('');
  });
});

describe('purchase messages', () => {
  it('show the order id on success and for an earlier purchase', () => {
    const ok: Result<Purchase> = { ok: true, status: 201, value: purchase, ageSeconds: 0, receivedAt: 0 };
    expect(purchaseMessage(ok)).toMatchObject({ tone: 'success', orderId: '01JORDER' });
    expect(purchaseMessage(problem('already_purchased', { purchase }))).toMatchObject({
      tone: 'info',
      title: expect.stringContaining('already bought'),
      orderId: '01JORDER',
    });
  });
  it('have words for every outcome code', () => {
    const titles = {
      sold_out: 'Sold out',
      sale_not_started: 'The sale has not started yet',
      sale_ended: 'The sale has ended',
      temporarily_unavailable: 'The shop is very busy',
      invalid_request: 'Please check your details',
      sale_not_found: 'This sale does not exist',
      unauthorized: 'Please sign in',
      forbidden: 'Not allowed',
      payload_too_large: 'Request too large',
      internal_error: 'Something went wrong',
    };
    for (const [code, title] of Object.entries(titles)) expect(purchaseMessage(problem(code)).title).toBe(title);
  });
  it('give a retry hint when the shop is busy', () => {
    const msg = purchaseMessage(problem('temporarily_unavailable', { status: 503, retryAfterSeconds: 3 }));
    expect(msg.detail).toContain('Try again in 3 seconds');
    expect(msg.detail).toContain('not confirmed');
  });
  it('say a network failure did not confirm the order', () => {
    expect(purchaseMessage({ ok: false, kind: 'network', timedOut: false })).toMatchObject({
      title: 'Could not reach the shop',
      detail: expect.stringContaining('not confirmed'),
    });
    expect(purchaseMessage({ ok: false, kind: 'network', timedOut: true }).detail).toContain('Check my purchase');
  });
});

describe('purchase look-up messages', () => {
  it('cover found, not found and forbidden', () => {
    const ok: Result<Purchase> = { ok: true, status: 200, value: purchase, ageSeconds: 0, receivedAt: 0 };
    expect(lookupMessage(ok, 'alice').orderId).toBe('01JORDER');
    expect(lookupMessage(problem('purchase_not_found', { status: 404 }), 'bob').detail).toBe('bob has not bought this item.');
    expect(lookupMessage(problem('forbidden', { status: 403 }), 'bob').detail).toBe('You can only check your own purchase.');
  });
});

describe('configuration', () => {
  const doc = (meta: string) => ({ querySelector: () => ({ content: meta }) }) as unknown as Document;
  const loc = (search: string) => ({ search }) as Location;
  it('takes ?api= only for loopback addresses', () => {
    expect(apiBase(loc('?api=http://127.0.0.1:9000/'), doc(''))).toBe('http://127.0.0.1:9000');
    expect(apiBase(loc('?api=http://localhost:9000'), doc(''))).toBe('http://localhost:9000');
    expect(apiBase(loc('?api=https://evil.example'), doc(''))).toBe('');
    expect(apiBase(loc('?api=javascript:alert(1)'), doc(''))).toBe('');
  });
  it('falls back to the meta tag, then to the page origin', () => {
    expect(apiBase(loc(''), doc('http://127.0.0.1:9100/'))).toBe('http://127.0.0.1:9100');
    expect(apiBase(loc(''), doc(''))).toBe('');
  });
  it('reads the subject of a JWT', () => {
    const part = (o: object) =>
      btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o)))).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
    expect(tokenSubject(`${part({ alg: 'none' })}.${part({ sub: 'user-ü' })}.sig`)).toBe('user-ü');
    expect(tokenSubject('not-a-jwt')).toBeUndefined();
  });
});

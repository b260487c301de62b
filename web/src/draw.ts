/**
 * The buyer's own check of a public draw, in the browser: that their id, SHA-256(userId), is in
 * the sealed entrant list whose Merkle root the sale status publishes (`queue.entrantsRoot`), by the
 * RFC 9162 audit path their place carries (`entrantProof`). The same construction as the server's
 * (`shared/src/merkle.rs`): leaf = SHA-256(0x00 ‖ id), node = SHA-256(0x01 ‖ left ‖ right), ids
 * sorted. Nothing here is trusted by the server; it only tells the shopper what they can see.
 */

import type { EntrantProof } from './api';

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await subtle().digest('SHA-256', all));
}

/** 64 hex characters as 32 bytes; undefined for anything else. */
export function hash32(hex: string): Uint8Array | undefined {
  if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
  return Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** SHA-256 of the user id as the list publishes it (hex). */
export async function entrantId(userId: string): Promise<string> {
  const h = await sha256(new TextEncoder().encode(userId));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** RFC 9162 §2.1.3.2: is `id` the leaf at `index` of `size` leaves under `root`? */
export async function verifyInclusion(id: Uint8Array, index: number, size: number, path: Uint8Array[], root: Uint8Array): Promise<boolean> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  // Bit operations on safe integers above 2^31 need BigInt.
  let f = BigInt(index);
  let s = BigInt(size - 1);
  let r = await sha256(Uint8Array.of(0), id);
  for (const p of path) {
    if (s === 0n) return false;
    if ((f & 1n) === 1n || f === s) {
      r = await sha256(Uint8Array.of(1), p, r);
      while ((f & 1n) === 0n && f !== 0n) {
        f >>= 1n;
        s >>= 1n;
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    f >>= 1n;
    s >>= 1n;
  }
  return s === 0n && equal(r, root);
}

/**
 * Whether `proof` shows `userId` in the list of `count` entrants under `root` (hex): the id is
 * theirs, the proof is for a list of that size, and the path leads to the root. (An audit path
 * alone does not fix the list's size for every index: the size is checked against the status.)
 */
export async function checkEntrantProof(userId: string, proof: EntrantProof, root: string, count: number): Promise<boolean> {
  if (proof.size !== count) return false;
  const rootBytes = hash32(root);
  const id = hash32(proof.id);
  const path = proof.path.map(hash32);
  if (!rootBytes || !id || path.some((p) => p === undefined)) return false;
  if ((await entrantId(userId)) !== proof.id) return false;
  return verifyInclusion(id, proof.index, proof.size, path as Uint8Array[], rootBytes);
}

/** The line the room panel shows under a drawn place, once checked. */
export function drawCheckNote(ok: boolean, count: number | undefined): string {
  const of = count != null ? ` of ${count.toLocaleString('en')} entrants` : '';
  return ok
    ? `Checked in your browser: your id is in the published list${of} that the draw ordered.`
    : 'Your place could not be checked against the published list: the proof does not lead to its root.';
}

import { describe, expect, it } from 'vitest';

import type { EntrantProof } from './api';
import { checkEntrantProof, drawCheckNote, entrantId, hash32, verifyInclusion } from './draw';
// Made and kept equal by the server's own Merkle tree (tests/public_draw.rs).
import vector from './fixtures/entrant-proofs.json';

const flip = (hex: string): string => (hex[0] === '0' ? '1' : '0') + hex.slice(1);

describe('the buyer’s own check of a public draw', () => {
  it('accepts every proof the server makes, for its own user only', async () => {
    expect(vector.entrants.length).toBe(7);
    for (const { userId, proof } of vector.entrants) {
      expect(await entrantId(userId)).toBe(proof.id);
      expect(await checkEntrantProof(userId, proof, vector.root, 7)).toBe(true);
      expect(await checkEntrantProof(`${userId}x`, proof, vector.root, 7)).toBe(false);
    }
  });

  it('refuses a proof that does not lead to the root', async () => {
    const { userId, proof } = vector.entrants[3];
    const cases: EntrantProof[] = [
      { ...proof, path: [flip(proof.path[0]), ...proof.path.slice(1)] },
      { ...proof, path: proof.path.slice(1) },
      { ...proof, path: [...proof.path, proof.path[0]] },
      { ...proof, index: proof.index + 1 },
      { ...proof, index: proof.size },
      { ...proof, size: proof.size + 1 },
      { ...proof, index: -1 },
      { ...proof, path: ['not hex'] },
    ];
    for (const bad of cases) expect(await checkEntrantProof(userId, bad, vector.root, 7)).toBe(false);
    expect(await checkEntrantProof(userId, proof, flip(vector.root), 7)).toBe(false);
    expect(await checkEntrantProof(userId, proof, 'short', 7)).toBe(false);
    // A list of another size than the status publishes.
    expect(await checkEntrantProof(userId, proof, vector.root, 8)).toBe(false);
  });

  it('checks a one-entrant list (no path) and refuses an empty size', async () => {
    const id = hash32(await entrantId('solo'))!;
    // A one-leaf tree's root is the leaf hash, SHA-256(0x00 ‖ id).
    const leaf = new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.of(0, ...id)));
    expect(await verifyInclusion(id, 0, 1, [], leaf)).toBe(true);
    expect(await verifyInclusion(id, 0, 0, [], leaf)).toBe(false);
  });

  it('says what was checked', () => {
    expect(drawCheckNote(true, 12000)).toContain('in the published list of 12,000 entrants');
    expect(drawCheckNote(false, 3)).toContain('could not be checked');
  });
});

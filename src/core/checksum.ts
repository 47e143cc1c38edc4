// Checksums. This is the one file in the project that imports node:crypto (HOUSE_RULES §1), so the
// pure core can hash without touching ambient I/O. CRC32 guards frames on the wire; SHA-256 guards
// everything that must be tamper-evident: journal records, the hash chain, per-stream chains.

import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { assert } from './assert.js';
import type { ClientId } from './types.js';

const clientIdSizeBytes = 16;

export const sha256SizeBytes = 32;

export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial);
}

/** SHA-256 of one buffer. */
export function sha256(data: Uint8Array): Uint8Array {
  return oneShotHash('sha256', data, 'buffer');
}

/** SHA-256 over several parts, without concatenating them first. */
export function sha256Parts(parts: readonly Uint8Array[]): Uint8Array {
  const hasher = createHash('sha256');
  for (const part of parts) hasher.update(part);
  return hasher.digest();
}

export function checksumEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

/**
 * A client id from its 16 wire bytes. Hex of exactly 16 bytes is always 32 lower-case hex
 * digits, so only the length is checked (asClientId's pattern test showed up at 3% of a
 * leader's CPU when run for every request).
 */
export function clientIdFromBytes(data: Uint8Array): ClientId {
  assert(data.length === clientIdSizeBytes, 'a client id is 16 bytes');
  return toHex(data) as ClientId;
}

export function fromHex(hex: string): Uint8Array {
  return Buffer.from(hex, 'hex');
}

/** Fresh random bytes, for ids made at the edge (client ids). Never used by the pure core. */
export function randomId(sizeBytes: number): Uint8Array {
  return randomBytes(sizeBytes);
}

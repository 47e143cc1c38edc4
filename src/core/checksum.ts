// Checksums. This is the one file in the project that imports node:crypto (HOUSE_RULES §1), so the
// pure core can hash without touching ambient I/O. CRC32 guards frames on the wire; SHA-256 guards
// everything that must be tamper-evident: journal records, the hash chain, per-stream chains.

import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';

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

export function fromHex(hex: string): Uint8Array {
  return Buffer.from(hex, 'hex');
}

/** Fresh random bytes, for ids made at the edge (client ids). Never used by the pure core. */
export function randomId(sizeBytes: number): Uint8Array {
  return randomBytes(sizeBytes);
}

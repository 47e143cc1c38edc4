// Checksums. This is the one file of core/ that imports node:crypto (HOUSE_RULES §1), so the
// pure core can hash without touching ambient I/O; it hashes only and draws no randomness (lint
// forbids it: random client ids are made in client/client_id.ts). CRC32 guards frames on the
// wire; SHA-256 guards everything that must be tamper-evident: journal records, the hash chain,
// per-stream chains.

import { createHash, hash as oneShotHash } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { assert } from './assert.js';
import type { ClientId } from './types.js';

const clientIdSizeBytes = 16;

export const sha256SizeBytes = 32;

export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial);
}

// node:crypto hands a digest back either as a new Buffer (an ArrayBuffer with its own off-heap
// store, which costs CPU and GC work per call) or as a string. As a 'binary' (latin1) string it
// is a small heap string whose char codes are the digest's bytes, copied here into the caller's
// array: less CPU per hash and nothing off-heap (docs/performance.md, "Figures behind the
// code"). The per-stream chain hashes once per event, so this is on the hot path.

function copyDigest(digest: string, out: Uint8Array, offset: number): void {
  assert(digest.length === sha256SizeBytes, 'a SHA-256 digest is 32 bytes');
  assert(offset >= 0 && offset + sha256SizeBytes <= out.length, 'the digest fits the output');
  for (let index = 0; index < sha256SizeBytes; index++) {
    out[offset + index] = digest.charCodeAt(index);
  }
}

/** SHA-256 of one buffer, written to out[offset, offset + 32). */
export function sha256Into(data: Uint8Array, out: Uint8Array, offset = 0): void {
  copyDigest(oneShotHash('sha256', data, 'binary'), out, offset);
}

/** SHA-256 of one buffer, in a new 32-byte array. */
export function sha256(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(sha256SizeBytes);
  sha256Into(data, out, 0);
  return out;
}

/** SHA-256 over several parts, without concatenating them, written to out[offset, +32). */
export function sha256PartsInto(parts: readonly Uint8Array[], out: Uint8Array, offset = 0): void {
  const hasher = createHash('sha256');
  for (const part of parts) hasher.update(part);
  copyDigest(hasher.digest('binary'), out, offset);
}

/** SHA-256 over several parts, without concatenating them first. */
export function sha256Parts(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(sha256SizeBytes);
  sha256PartsInto(parts, out, 0);
  return out;
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
 * digits, so only the length is checked: asClientId's pattern test, run for every request,
 * showed in a leader's profile (docs/performance.md, "Figures behind the code").
 */
export function clientIdFromBytes(data: Uint8Array): ClientId {
  assert(data.length === clientIdSizeBytes, 'a client id is 16 bytes');
  return toHex(data) as ClientId;
}

export function fromHex(hex: string): Uint8Array {
  return Buffer.from(hex, 'hex');
}

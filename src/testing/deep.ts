// Generic walks over plain data, used by the simulator on every message and effect:
//
// - deepCopy(): the network delivers messages as objects, but copies them first so that two
//   replicas (or a replica and the simulator's checkers) never share a mutable array or object.
//   It copies plain objects, arrays, typed arrays, Maps and Sets; primitives are shared. It is
//   generic on purpose: message kinds added to the replica later need no change here.
// - TraceHash: a running 64-bit FNV-1a hash (two 32-bit lanes with different offsets) over a
//   canonical walk of a value. Every delivered message and every effect is folded into it, so
//   two runs of one seed agree on the hash exactly when they agree on everything that crossed
//   a replica's boundary. It is a fingerprint for determinism, not a cryptographic digest.
//
// - flipPrepareBit(): the network's corruption fault, on a copied message.
//
// The walks visit object keys in insertion order; the replica builds its objects the same
// way every time, so that order is deterministic.

import { assert } from '../core/assert.js';
import { crc32 } from '../core/checksum.js';

const depthMax = 64;

export function deepCopy<T>(value: T): T {
  return copy(value, 0) as T;
}

function copy(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  assert(depth < depthMax, 'deepCopy: value nested too deeply (a cycle?)');
  if (value instanceof Uint8Array) return value.slice();
  if (ArrayBuffer.isView(value)) {
    const view = value as unknown as { slice(): unknown };
    return view.slice();
  }
  if (Array.isArray(value)) return value.map((item: unknown) => copy(item, depth + 1));
  if (value instanceof Map) {
    const out = new Map<unknown, unknown>();
    for (const [k, v] of value) out.set(copy(k, depth + 1), copy(v, depth + 1));
    return out;
  }
  if (value instanceof Set) {
    const out = new Set<unknown>();
    for (const v of value) out.add(copy(v, depth + 1));
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    out[key] = copy((value as Record<string, unknown>)[key], depth + 1);
  }
  return out;
}

/** A prepare-shaped object inside a message: its bytes, which a fault may flip. */
interface PrepareBytes {
  headerBytes: Uint8Array;
  body: Uint8Array;
}

function isPrepareBytes(value: unknown): value is PrepareBytes {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return candidate['headerBytes'] instanceof Uint8Array && candidate['body'] instanceof Uint8Array;
}

function findPrepares(value: unknown, found: PrepareBytes[], depth: number): void {
  if (value === null || typeof value !== 'object' || depth >= depthMax) return;
  if (value instanceof Uint8Array) return;
  if (isPrepareBytes(value)) {
    found.push(value);
    return;
  }
  const items = Array.isArray(value) ? value : Object.values(value);
  for (const item of items) findPrepares(item, found, depth + 1);
}

/**
 * Flips one bit of one prepare carried anywhere in `message` (a deep copy the caller owns), in
 * its header bytes or its body, chosen by `pick`. Returns false when it carries no prepare.
 */
export function flipPrepareBit(message: unknown, pick: (n: number) => number): boolean {
  const found: PrepareBytes[] = [];
  findPrepares(message, found, 0);
  if (found.length === 0) return false;
  const prepare = found[pick(found.length)] as PrepareBytes;
  const total = prepare.headerBytes.length + prepare.body.length;
  if (total === 0) return false;
  const at = pick(total);
  const bit = 1 << pick(8);
  const bytes = at < prepare.headerBytes.length ? prepare.headerBytes : prepare.body;
  const index = at < prepare.headerBytes.length ? at : at - prepare.headerBytes.length;
  bytes[index] = (bytes[index] ?? 0) ^ bit;
  return true;
}

const fnvPrime = 0x01000193;

/** A running, order-sensitive 64-bit fingerprint of everything fed to it. */
export class TraceHash {
  private a = 0x811c9dc5;
  private b = 0x050c5d1f;
  /** Values folded in so far. */
  count = 0;

  private byte(x: number): void {
    this.a = Math.imul(this.a ^ (x & 0xff), fnvPrime);
    this.b = Math.imul(this.b ^ (x & 0xff), fnvPrime) ^ (this.a >>> 15);
  }

  private u32(x: number): void {
    this.byte(x);
    this.byte(x >>> 8);
    this.byte(x >>> 16);
    this.byte(x >>> 24);
  }

  private number(x: number): void {
    if (Number.isSafeInteger(x)) {
      this.byte(1);
      this.u32(x >>> 0);
      this.u32(Math.floor(x / 0x1_0000_0000) >>> 0);
      return;
    }
    this.byte(2);
    const text = String(x);
    for (let i = 0; i < text.length; i++) this.byte(text.charCodeAt(i));
  }

  private string(text: string): void {
    this.byte(3);
    this.u32(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      this.byte(code);
      if (code > 0xff) this.byte(code >>> 8);
    }
  }

  /** Folds one value (any plain data) into the hash. */
  add(value: unknown): void {
    this.count += 1;
    this.walk(value, 0);
  }

  private walk(value: unknown, depth: number): void {
    assert(depth < depthMax, 'TraceHash: value nested too deeply (a cycle?)');
    if (value === null || value === undefined) return this.byte(value === null ? 4 : 5);
    switch (typeof value) {
      case 'number':
        return this.number(value);
      case 'string':
        return this.string(value);
      case 'boolean':
        return this.byte(value ? 6 : 7);
      case 'bigint':
        return this.string(value.toString());
      case 'object':
        return this.walkObject(value, depth);
      default:
        return this.string(typeof value);
    }
  }

  private walkObject(value: object, depth: number): void {
    if (value instanceof Uint8Array) {
      // Bytes go through CRC-32 (native, fast) and the CRC is folded in: prepares are large
      // and frequent, and a fingerprint needs no more than that.
      this.byte(8);
      this.u32(value.length);
      this.u32(crc32(value));
      return;
    }
    if (Array.isArray(value) || value instanceof Set) {
      this.byte(9);
      for (const item of value) this.walk(item, depth + 1);
      this.byte(10);
      return;
    }
    if (value instanceof Map) {
      this.byte(11);
      for (const [k, v] of value) {
        this.walk(k, depth + 1);
        this.walk(v, depth + 1);
      }
      this.byte(12);
      return;
    }
    this.byte(13);
    for (const key of Object.keys(value)) {
      this.string(key);
      this.walk((value as Record<string, unknown>)[key], depth + 1);
    }
    this.byte(14);
  }

  /** The fingerprint so far, as 16 hex characters. */
  digest(): string {
    const hex = (x: number): string => (x >>> 0).toString(16).padStart(8, '0');
    return hex(this.a) + hex(this.b);
  }
}

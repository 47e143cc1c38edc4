// Little-endian binary Writer and Reader, used by every codec. The Writer grows its buffer by
// doubling; the Reader never reads past its end: a short or malformed input raises a
// DecodeError, which codecs at the boundary turn into a KmbError with a stable code.

import { assert } from './assert.js';

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const u32Max = 0xffff_ffff;

/** The value of one hex digit's char code, or -1. */
function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1;
}

export class Writer {
  private bytes: Uint8Array;
  private view: DataView;
  private position = 0;

  constructor(initialSizeBytes = 256) {
    assert(initialSizeBytes > 0, 'writer size must be positive');
    this.bytes = new Uint8Array(initialSizeBytes);
    this.view = new DataView(this.bytes.buffer);
  }

  get length(): number {
    return this.position;
  }

  /** Empties the writer for reuse (its buffer is kept; views from bytesView() go stale). */
  reset(): this {
    this.position = 0;
    return this;
  }

  private reserve(sizeBytes: number): void {
    const needed = this.position + sizeBytes;
    if (needed <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes.subarray(0, this.position));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, 'u8 out of range');
    this.reserve(1);
    this.view.setUint8(this.position, value);
    this.position += 1;
    return this;
  }

  u16(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, 'u16 out of range');
    this.reserve(2);
    this.view.setUint16(this.position, value, true);
    this.position += 2;
    return this;
  }

  u32(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= u32Max, 'u32 out of range');
    this.reserve(4);
    this.view.setUint32(this.position, value, true);
    this.position += 4;
    return this;
  }

  /** A non-negative safe integer stored in 8 bytes. */
  u64(value: number): this {
    assert(Number.isSafeInteger(value) && value >= 0, 'u64 must be a non-negative safe integer');
    this.reserve(8);
    this.view.setUint32(this.position, value % 0x1_0000_0000, true);
    this.view.setUint32(this.position + 4, Math.floor(value / 0x1_0000_0000), true);
    this.position += 8;
    return this;
  }

  bool(value: boolean): this {
    return this.u8(value ? 1 : 0);
  }

  /** Raw bytes of a size fixed by the format (no length prefix). */
  fixed(data: Uint8Array, sizeBytes: number): this {
    assert(data.length === sizeBytes, `fixed field must be ${sizeBytes} bytes`);
    this.reserve(sizeBytes);
    this.bytes.set(data, this.position);
    this.position += sizeBytes;
    return this;
  }

  /**
   * The sizeBytes bytes that `hex` spells (2 × sizeBytes hex digits, either case), written in
   * place: client ids travel as hex strings inside the node and as 16 bytes on the wire and in
   * the journal, and parsing them through a Buffer cost an allocation per request.
   */
  hexFixed(hex: string, sizeBytes: number): this {
    assert(hex.length === sizeBytes * 2, `hex field must be ${sizeBytes * 2} digits`);
    this.reserve(sizeBytes);
    for (let index = 0; index < sizeBytes; index++) {
      const high = hexDigit(hex.charCodeAt(index * 2));
      const low = hexDigit(hex.charCodeAt(index * 2 + 1));
      assert(high >= 0 && low >= 0, 'hex field must be hex digits');
      this.bytes[this.position + index] = (high << 4) | low;
    }
    this.position += sizeBytes;
    return this;
  }

  /** Bytes with a u32 length prefix. */
  bytesField(data: Uint8Array): this {
    this.u32(data.length);
    this.reserve(data.length);
    this.bytes.set(data, this.position);
    this.position += data.length;
    return this;
  }

  /**
   * UTF-8 string with a u32 length prefix. ASCII (every char code below 0x80, whose UTF-8 is
   * the char codes themselves) is written directly, without an encoded copy.
   */
  string(value: string): this {
    const length = value.length;
    for (let index = 0; index < length; index++) {
      if (value.charCodeAt(index) >= 0x80) return this.bytesField(textEncoder.encode(value));
    }
    this.u32(length);
    this.reserve(length);
    for (let index = 0; index < length; index++) {
      this.bytes[this.position + index] = value.charCodeAt(index);
    }
    this.position += length;
    return this;
  }

  zeros(sizeBytes: number): this {
    this.reserve(sizeBytes);
    this.bytes.fill(0, this.position, this.position + sizeBytes);
    this.position += sizeBytes;
    return this;
  }

  /** The written bytes (a view into the writer's buffer until the next write). */
  bytesView(): Uint8Array {
    return this.bytes.subarray(0, this.position);
  }

  /** A copy of the written bytes that later writes do not disturb. */
  finish(): Uint8Array {
    return this.bytes.slice(0, this.position);
  }
}

/**
 * Reads little-endian integers and length-prefixed fields from untrusted bytes; every read is
 * bounds-checked and throws DecodeError past the end. Integers are assembled from the bytes
 * directly rather than through a DataView: a reader is made for every frame, command and batch,
 * and the DataView each one built was an allocation per request on every replica.
 */
export class Reader {
  private position = 0;

  constructor(private readonly bytes: Uint8Array) {}

  get offset(): number {
    return this.position;
  }

  get remaining(): number {
    return this.bytes.length - this.position;
  }

  private need(sizeBytes: number): void {
    if (this.position + sizeBytes > this.bytes.length) {
      throw new DecodeError(
        `input ends early: need ${sizeBytes} bytes at ${this.position}, have ${this.remaining}`,
      );
    }
  }

  /** The u32 at `at` (bounds already checked). */
  private u32At(at: number): number {
    const bytes = this.bytes;
    return (
      (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
    );
  }

  u8(): number {
    this.need(1);
    const value = this.bytes[this.position]!;
    this.position += 1;
    return value;
  }

  u16(): number {
    this.need(2);
    const value = this.bytes[this.position]! | (this.bytes[this.position + 1]! << 8);
    this.position += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.u32At(this.position);
    this.position += 4;
    return value;
  }

  u64(): number {
    this.need(8);
    const low = this.u32At(this.position);
    const high = this.u32At(this.position + 4);
    this.position += 8;
    const value = high * 0x1_0000_0000 + low;
    if (!Number.isSafeInteger(value)) throw new DecodeError('u64 exceeds the safe integer range');
    return value;
  }

  bool(): boolean {
    const value = this.u8();
    if (value > 1) throw new DecodeError(`bool must be 0 or 1, got ${value}`);
    return value === 1;
  }

  fixed(sizeBytes: number): Uint8Array {
    this.need(sizeBytes);
    const value = this.bytes.subarray(this.position, this.position + sizeBytes);
    this.position += sizeBytes;
    return value;
  }

  /** Length-prefixed bytes; maxBytes bounds what a hostile length may claim. */
  bytesField(maxBytes: number): Uint8Array {
    const sizeBytes = this.u32();
    if (sizeBytes > maxBytes)
      throw new DecodeError(`field of ${sizeBytes} bytes exceeds ${maxBytes}`);
    return this.fixed(sizeBytes);
  }

  string(maxBytes: number): string {
    const data = this.bytesField(maxBytes);
    try {
      return textDecoder.decode(data);
    } catch {
      throw new DecodeError('string is not valid UTF-8');
    }
  }

  skip(sizeBytes: number): void {
    this.need(sizeBytes);
    this.position += sizeBytes;
  }

  /** Asserts, as a decode error, that the whole input was consumed. */
  end(): void {
    if (this.remaining !== 0) throw new DecodeError(`${this.remaining} trailing bytes`);
  }
}

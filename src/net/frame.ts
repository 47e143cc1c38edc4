// Binary framing for every TCP connection: clients and replicas, on the same port.
//
// A frame is a 16-byte header followed by a body:
//   0  magic     u32  'KMBF'
//   4  size      u32  whole frame in bytes, header included
//   8  checksum  u32  CRC32 of bytes 12..16 (kind, reserved) and then the body
//   12 kind      u8   message kind (client_protocol.ts)
//   13 reserved  [3]  zero
// The decoder accepts bytes split at any boundary and yields whole frames. A frame that is too
// large, too small, has a bad magic or a bad checksum is a stream error: the connection cannot be
// resynchronised, so the decoder reports the error once and stops; the caller answers with the
// stable code and closes the connection.
//
// Memory: bytes are kept as the chunks they arrived in, and a frame's chunks are joined only
// once all of its bytes are here; nothing is ever allocated from the size a header claims. The
// owner of many decoders bounds their sum (frame_budget.ts) with bufferedSizeBytes and
// bufferedChunkCount, and drops what a closing connection held with release().

import { constants } from '../core/constants.js';
import { crc32 } from '../core/checksum.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { assert } from '../core/assert.js';

export const frameHeaderSizeBytes = 16;
export const frameMagic = 0x46424d4b; // 'KMBF' little-endian

export interface Frame {
  readonly kind: number;
  readonly body: Uint8Array;
}

export interface FrameError {
  readonly code: ErrorCode;
  readonly message: string;
}

/**
 * The CRC32 of header bytes 12..16 for each kind with the reserved bytes zero (the only valid
 * value, checked before the checksum): a frame's checksum continues from it over the body, so
 * neither side makes a view of the header to checksum it.
 */
const kindChecksums = Uint32Array.from({ length: 256 }, (_, kind) =>
  crc32(Uint8Array.of(kind, 0, 0, 0)),
);
const prefixScratch = new Uint8Array(1);

/**
 * A frame of `kind` around `body`. With `prefixByte`, the body is that byte followed by `body`
 * (the replica bus's message tag), written straight into the frame instead of being copied into
 * a new buffer first.
 */
export function encodeFrame(kind: number, body: Uint8Array, prefixByte?: number): Uint8Array {
  assert(kind >= 0 && kind <= 0xff, 'frame kind out of range');
  const prefixBytes = prefixByte === undefined ? 0 : 1;
  const sizeBytes = frameHeaderSizeBytes + prefixBytes + body.length;
  assert(sizeBytes <= constants.frameSizeBytesMax, 'frame too large to send');
  const frame = Buffer.allocUnsafe(sizeBytes);
  frame.writeUInt32LE(frameMagic, 0);
  frame.writeUInt32LE(sizeBytes, 4);
  frame.writeUInt8(kind, 12);
  frame.fill(0, 13, 16);
  if (prefixByte !== undefined) frame.writeUInt8(prefixByte, frameHeaderSizeBytes);
  frame.set(body, frameHeaderSizeBytes + prefixBytes);
  let checksum = kindChecksums[kind]!;
  if (prefixByte !== undefined) {
    prefixScratch[0] = prefixByte;
    checksum = crc32(prefixScratch, checksum);
  }
  frame.writeUInt32LE(crc32(body, checksum), 8);
  return frame;
}

/**
 * Incremental frame decoder. push() bytes as they arrive; it returns the frames completed so far.
 * After an error every later push() returns the same error and no frames.
 *
 * Frames are read in place: a frame's body is a view of the chunk it arrived in, and a chunk
 * holding many frames is walked by offset (one view per frame, nothing else per frame). Chunks
 * are joined only when a frame spans them, and only once the whole frame has arrived.
 */
export class FrameDecoder {
  /** Received bytes not yet returned as frames; the first chunk is consumed from `offset`. */
  private chunks: Buffer[] = [];
  private offset = 0;
  private bufferedBytes = 0;
  private failure: FrameError | null = null;

  constructor(private readonly frameSizeBytesMax: number = constants.frameSizeBytesMax) {
    assert(frameSizeBytesMax > frameHeaderSizeBytes, 'frame size max too small');
  }

  get error(): FrameError | null {
    return this.failure;
  }

  get bufferedSizeBytes(): number {
    return this.bufferedBytes;
  }

  /** Chunks held: each costs an object and a backing store besides its bytes. */
  get bufferedChunkCount(): number {
    return this.chunks.length;
  }

  /** Drops every buffered byte; later pushes return nothing (the connection is closing). */
  release(): void {
    if (this.failure === null) {
      this.fail({ code: errorCodes.connection_lost, message: 'the connection is closing' });
    }
  }

  push(data: Uint8Array): { frames: Frame[]; error: FrameError | null } {
    const frames: Frame[] = [];
    if (this.failure !== null) return { frames, error: this.failure };
    if (data.length > 0) {
      const chunk = Buffer.isBuffer(data)
        ? data
        : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      this.chunks.push(chunk);
      this.bufferedBytes += data.length;
    }
    while (this.bufferedBytes >= frameHeaderSizeBytes) {
      if (this.firstChunkBytes() < frameHeaderSizeBytes) this.join();
      const chunk = this.chunks[0]!;
      const at = this.offset;
      const problem = this.checkHeader(chunk, at);
      if (problem !== null) {
        this.fail(problem);
        break;
      }
      const sizeBytes = chunk.readUInt32LE(at + 4);
      if (this.bufferedBytes < sizeBytes) break;
      if (this.firstChunkBytes() < sizeBytes) {
        this.join(); // The whole frame is here, split across chunks: join it once.
        continue;
      }
      const kind = chunk[at + 12]!;
      const body = chunk.subarray(at + frameHeaderSizeBytes, at + sizeBytes);
      if (crc32(body, kindChecksums[kind]!) !== chunk.readUInt32LE(at + 8)) {
        this.fail({ code: errorCodes.frame_checksum, message: 'frame checksum mismatch' });
        break;
      }
      frames.push({ kind, body });
      this.consume(sizeBytes);
    }
    return { frames, error: this.failure };
  }

  private firstChunkBytes(): number {
    return (this.chunks[0]?.length ?? 0) - this.offset;
  }

  private checkHeader(chunk: Buffer, at: number): FrameError | null {
    if (chunk.readUInt32LE(at) !== frameMagic) {
      return {
        code: errorCodes.frame_malformed,
        message: 'bad frame magic: not a kimberlite frame',
      };
    }
    const sizeBytes = chunk.readUInt32LE(at + 4);
    if (sizeBytes < frameHeaderSizeBytes) {
      return { code: errorCodes.frame_malformed, message: `frame size ${sizeBytes} is too small` };
    }
    if (sizeBytes > this.frameSizeBytesMax) {
      return {
        code: errorCodes.frame_too_large,
        message: `frame of ${sizeBytes} bytes exceeds the limit of ${this.frameSizeBytesMax}`,
      };
    }
    if (chunk[at + 13] !== 0 || chunk[at + 14] !== 0 || chunk[at + 15] !== 0) {
      return { code: errorCodes.frame_malformed, message: 'frame reserved bytes must be zero' };
    }
    return null;
  }

  private fail(error: FrameError): void {
    this.failure = error;
    this.chunks = [];
    this.offset = 0;
    this.bufferedBytes = 0;
  }

  /** Drops the first sizeBytes buffered bytes, which lie in the first chunk. */
  private consume(sizeBytes: number): void {
    assert(sizeBytes <= this.firstChunkBytes(), 'consume within the first chunk');
    this.offset += sizeBytes;
    this.bufferedBytes -= sizeBytes;
    if (this.firstChunkBytes() === 0) {
      this.chunks.shift();
      this.offset = 0;
    }
  }

  /** Joins every buffered byte into one chunk. */
  private join(): void {
    const first = this.chunks[0];
    assert(first !== undefined, 'join on an empty decoder');
    this.chunks[0] = first.subarray(this.offset);
    this.chunks = [Buffer.concat(this.chunks, this.bufferedBytes)];
    this.offset = 0;
  }
}

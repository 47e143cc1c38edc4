// Binary framing for every TCP connection (clients now, replicas later, on the same port).
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

/** CRC32 over the kind and reserved bytes and the body: everything but magic, size, checksum. */
function frameChecksum(frame: Uint8Array): number {
  return crc32(
    frame.subarray(frameHeaderSizeBytes),
    crc32(frame.subarray(12, frameHeaderSizeBytes)),
  );
}

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
  frame.writeUInt32LE(frameChecksum(frame), 8);
  return frame;
}

/**
 * Incremental frame decoder. push() bytes as they arrive; it returns the frames completed so far.
 * After an error every later push() returns the same error and no frames.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
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

  push(data: Uint8Array): { frames: Frame[]; error: FrameError | null } {
    const frames: Frame[] = [];
    if (this.failure !== null) return { frames, error: this.failure };
    if (data.length > 0) {
      this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      this.bufferedBytes += data.length;
    }
    while (this.bufferedBytes >= frameHeaderSizeBytes) {
      const header = this.peek(frameHeaderSizeBytes);
      const problem = this.checkHeader(header);
      if (problem !== null) {
        this.fail(problem);
        break;
      }
      const sizeBytes = header.readUInt32LE(4);
      if (this.bufferedBytes < sizeBytes) break;
      const whole = this.take(sizeBytes);
      const body = whole.subarray(frameHeaderSizeBytes);
      if (frameChecksum(whole) !== whole.readUInt32LE(8)) {
        this.fail({ code: errorCodes.frame_checksum, message: 'frame checksum mismatch' });
        break;
      }
      frames.push({ kind: whole.readUInt8(12), body });
    }
    return { frames, error: this.failure };
  }

  private checkHeader(header: Buffer): FrameError | null {
    if (header.readUInt32LE(0) !== frameMagic) {
      return {
        code: errorCodes.frame_malformed,
        message: 'bad frame magic: not a kimberlite frame',
      };
    }
    const sizeBytes = header.readUInt32LE(4);
    if (sizeBytes < frameHeaderSizeBytes) {
      return { code: errorCodes.frame_malformed, message: `frame size ${sizeBytes} is too small` };
    }
    if (sizeBytes > this.frameSizeBytesMax) {
      return {
        code: errorCodes.frame_too_large,
        message: `frame of ${sizeBytes} bytes exceeds the limit of ${this.frameSizeBytesMax}`,
      };
    }
    if (header[13] !== 0 || header[14] !== 0 || header[15] !== 0) {
      return { code: errorCodes.frame_malformed, message: 'frame reserved bytes must be zero' };
    }
    return null;
  }

  private fail(error: FrameError): void {
    this.failure = error;
    this.chunks = [];
    this.bufferedBytes = 0;
  }

  /** The first sizeBytes buffered bytes, without consuming them. */
  private peek(sizeBytes: number): Buffer {
    const first = this.chunks[0];
    assert(first !== undefined, 'peek on empty decoder');
    if (first.length >= sizeBytes) return first.subarray(0, sizeBytes);
    // Coalesce once, so that a frame arriving in many small chunks is not re-joined per push.
    const joined = Buffer.concat(this.chunks, this.bufferedBytes);
    this.chunks = [joined];
    return joined.subarray(0, sizeBytes);
  }

  /** Removes and returns the first sizeBytes buffered bytes. */
  private take(sizeBytes: number): Buffer {
    assert(sizeBytes <= this.bufferedBytes, 'take beyond buffered bytes');
    const first = this.chunks[0];
    assert(first !== undefined, 'take on empty decoder');
    let result: Buffer;
    if (first.length >= sizeBytes) {
      result = first.subarray(0, sizeBytes);
      if (first.length === sizeBytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(sizeBytes);
    } else {
      const joined = Buffer.concat(this.chunks, this.bufferedBytes);
      result = joined.subarray(0, sizeBytes);
      const rest = joined.subarray(sizeBytes);
      this.chunks = rest.length > 0 ? [rest] : [];
    }
    this.bufferedBytes -= sizeBytes;
    return result;
  }
}

// Property tests for framing: frames survive being split at any byte boundaries, and every kind
// of bad frame (wrong magic, oversized, undersized, bad checksum, nonzero reserved bytes) is
// reported with its stable code instead of being delivered.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { FrameDecoder, encodeFrame, frameHeaderSizeBytes } from './frame.js';

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    parts.push(bytes.subarray(start, point));
    start = point;
  }
  parts.push(bytes.subarray(start));
  return parts;
}

describe('frame decoder', () => {
  it('delivers the same frames however the byte stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.integer({ min: 0, max: 255 }),
            body: fc.uint8Array({ maxLength: 300 }),
          }),
          { maxLength: 20 },
        ),
        fc.array(fc.nat(), { maxLength: 40 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => encodeFrame(f.kind, f.body)));
          const decoder = new FrameDecoder();
          const out: { kind: number; body: Uint8Array }[] = [];
          for (const part of splitAt(stream, cuts)) {
            const { frames: got, error } = decoder.push(part);
            assert.equal(error, null);
            out.push(...got);
          }
          assert.equal(out.length, frames.length);
          out.forEach((frame, i) => {
            assert.equal(frame.kind, frames[i]?.kind);
            assert.deepEqual(Buffer.from(frame.body), Buffer.from(frames[i]?.body ?? []));
          });
          assert.equal(decoder.bufferedSizeBytes, 0);
        },
      ),
    );
  });

  it('reports a corrupted byte anywhere in a frame and delivers nothing after it', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (body, at, xor) => {
          const frame = Buffer.from(encodeFrame(7, body));
          const position = at % frame.length;
          frame[position] = (frame[position] ?? 0) ^ xor;
          const decoder = new FrameDecoder();
          const { frames, error } = decoder.push(Buffer.concat([frame, encodeFrame(7, body)]));
          // A flipped size byte may make the frame look longer (waiting for more) or invalid.
          if (error === null) {
            assert.equal(frames.length, 0);
          } else {
            assert.equal(frames.length, 0);
            const codes: ErrorCode[] = [
              errorCodes.frame_malformed,
              errorCodes.frame_too_large,
              errorCodes.frame_checksum,
            ];
            assert.ok(codes.includes(error.code));
            assert.deepEqual(decoder.push(encodeFrame(1, body)).frames, []);
          }
        },
      ),
    );
  });

  it('frames a prefix byte and a body exactly as the body with the byte in front', () => {
    fc.assert(
      fc.property(fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.uint8Array(), (k, p, body) => {
        const joined = new Uint8Array([p, ...body]);
        assert.deepEqual(Buffer.from(encodeFrame(k, body, p)), Buffer.from(encodeFrame(k, joined)));
      }),
    );
  });

  it('rejects an oversized frame from its header alone', () => {
    const decoder = new FrameDecoder(1024);
    const header = Buffer.from(encodeFrame(1, new Uint8Array(0)));
    header.writeUInt32LE(1025 + frameHeaderSizeBytes, 4);
    const { error } = decoder.push(header);
    assert.equal(error?.code, errorCodes.frame_too_large);
  });

  it('rejects garbage bytes as malformed', () => {
    const { error } = new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(error?.code, errorCodes.frame_malformed);
  });
});

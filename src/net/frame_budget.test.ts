// Tests of the frame buffer budget: property tests drive several frame decoders with frames
// split at arbitrary byte boundaries and interleaved, charging each decoder's buffered cost to
// one budget after every push, as the client port does. They prove that the budget's sum never
// exceeds its bound once enforce() returns, that it always equals the sum of the open
// accounts, that eviction takes the account charged the most, and that a decoder that was
// never evicted still delivers exactly the frames it was sent.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { constants } from '../core/constants.js';
import { FrameDecoder, encodeFrame } from './frame.js';
import { FrameBudget, bufferedCostBytes } from './frame_budget.js';
import type { FrameBudgetAccount } from './frame_budget.js';

interface Stream {
  readonly decoder: FrameDecoder;
  readonly account: FrameBudgetAccount;
  readonly sent: Uint8Array[];
  readonly received: Uint8Array[];
  parts: Uint8Array[];
  evicted: boolean;
}

const frameArb = fc.uint8Array({ maxLength: 2000 });
const streamArb = fc.record({
  frames: fc.array(frameArb, { maxLength: 6 }),
  cuts: fc.array(fc.nat(), { maxLength: 30 }),
});

function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    if (point > start) parts.push(bytes.subarray(start, point));
    start = point;
  }
  return parts;
}

describe('frame budget', () => {
  it('holds its bound under interleaved, arbitrarily split streams; survivors decode', () => {
    fc.assert(
      fc.property(
        fc.array(streamArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        fc.integer({ min: 1, max: 6000 }),
        (specs, order, budgetBytes) => {
          const budget = new FrameBudget(budgetBytes);
          const streams: Stream[] = specs.map((spec) => {
            const bodies = spec.frames;
            const bytes = Buffer.concat(bodies.map((body) => encodeFrame(7, body)));
            const stream: Stream = {
              decoder: new FrameDecoder(),
              account: null as unknown as FrameBudgetAccount,
              sent: bodies,
              received: [],
              parts: split(bytes, spec.cuts),
              evicted: false,
            };
            const account = budget.open(() => {
              // The largest charge goes, as the client port's eviction does.
              const largest = Math.max(...streams.map((s) => s.account.chargedBytes));
              assert.equal(stream.account.chargedBytes, largest, 'the largest is evicted');
              stream.evicted = true;
              stream.decoder.release();
              stream.account.release();
            });
            return Object.assign(stream, { account });
          });
          const push = (stream: Stream): void => {
            const part = stream.parts.shift();
            if (part === undefined || stream.evicted) return;
            const { frames, error } = stream.decoder.push(part);
            assert.equal(error, null);
            for (const frame of frames) stream.received.push(frame.body);
            stream.account.charge(bufferedCostBytes(stream.decoder));
            budget.enforce();
            assert.ok(budget.usedBytes <= budgetBytes, 'within the budget after enforce');
            const sum = streams.reduce((total, s) => total + s.account.chargedBytes, 0);
            assert.equal(budget.usedBytes, sum, 'the budget is the sum of its accounts');
          };
          for (const pick of order) push(streams[pick % streams.length]!);
          for (const stream of streams) while (stream.parts.length > 0) push(stream);
          for (const stream of streams) {
            if (stream.evicted) continue;
            assert.equal(stream.decoder.bufferedSizeBytes, 0, 'a whole stream leaves nothing');
            assert.deepEqual(
              stream.received.map((b) => Buffer.from(b).toString('hex')),
              stream.sent.map((b) => Buffer.from(b).toString('hex')),
            );
          }
        },
      ),
    );
  });

  it('charges a fixed cost per chunk, so tiny chunks cannot hide', () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame(7, new Uint8Array(100));
    for (let i = 0; i < 40; i++) decoder.push(frame.subarray(i, i + 1));
    // The 16 header bytes were joined into one chunk; 24 one-byte chunks follow.
    assert.equal(decoder.bufferedSizeBytes, 40);
    assert.equal(
      bufferedCostBytes(decoder),
      40 + decoder.bufferedChunkCount * constants.frameChunkOverheadBytes,
    );
    assert.ok(decoder.bufferedChunkCount > 1);
  });

  it('never allocates from a header: 8 MiB announced, 20 bytes held', () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0x46424d4b, 0);
    header.writeUInt32LE(constants.frameSizeBytesMax, 4);
    decoder.push(header);
    decoder.push(new Uint8Array(4));
    assert.equal(decoder.bufferedSizeBytes, 20);
    decoder.release();
    assert.equal(decoder.bufferedSizeBytes, 0);
    assert.equal(decoder.push(new Uint8Array(10)).frames.length, 0, 'released: reads nothing');
  });

  it('releasing an account returns its charge and forgets it', () => {
    const budget = new FrameBudget(100);
    const evicted: string[] = [];
    const a = budget.open(() => {
      evicted.push('a');
      a.release();
    });
    const b = budget.open(() => {
      evicted.push('b');
      b.release();
    });
    a.charge(60);
    b.charge(30);
    assert.equal(budget.enforce(), 0);
    b.charge(70);
    assert.equal(budget.enforce(), 1);
    assert.deepEqual(evicted, ['b']);
    assert.equal(budget.usedBytes, 60);
    a.release();
    assert.equal(budget.usedBytes, 0);
    assert.equal(budget.accountCount, 0);
    a.charge(10);
    assert.equal(budget.usedBytes, 0, 'a released account charges nothing');
  });
});

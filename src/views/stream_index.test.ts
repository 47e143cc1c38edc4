// The read index against a model: for random appends to several streams (random event counts,
// ops and request indexes), every offset of every stream locates to the append that holds it,
// with the event's position inside that append, and offsets past the end locate to nothing. A
// second test fills one stream across several full chunks, so the growth of the first chunk and
// the search across chunks are both exercised at their boundaries (and the digest, which hashes
// in chunks, over many of them).
//
// The index as a view (view.ts): random committed ops (registers, rejected commands, appends to
// several streams, other kernel effects, ops where nothing applied) fed through apply() locate
// like a plain model of the appends, move appliedOp op by op, and after reset() and the same ops
// again give the same digest; a prefix of the ops gives another digest. The digest is canonical
// (the same entries recorded in another order hash the same) and apply() refuses an op that is
// not the next one.
//
// appendsIn(), the walk stream reads use: for random appends and random ranges (within, across
// and past the end of a stream, and across full chunks), its spans are exactly the distinct
// appends locate() gives for the range's offsets, in order, each with its whole extent.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssertionError } from '../core/assert.js';
import { toHex } from '../core/checksum.js';
import { errorCodes } from '../core/errors.js';
import { asOffset, asOp, asStreamId, asTenantId, asTimestampUs } from '../core/types.js';
import type { StreamId } from '../core/types.js';
import type { KernelOutput } from '../kernel/kernel.js';
import { AppendSpans, chunkEntryCountMax, StreamIndex } from './stream_index.js';
import type { AppliedCommand, CommittedOp } from './view.js';

interface ModelAppend {
  readonly stream: number;
  readonly firstOffset: number;
  readonly count: number;
  readonly op: number;
  readonly requestIndex: number;
}

test('every offset locates to the append that holds it (model)', () => {
  const append = fc.record({
    stream: fc.integer({ min: 1, max: 3 }),
    count: fc.integer({ min: 1, max: 5 }),
    requestIndex: fc.integer({ min: 0, max: 1023 }),
  });
  fc.assert(
    fc.property(fc.array(append, { maxLength: 300 }), (appends) => {
      const index = new StreamIndex();
      const next = new Map<number, number>();
      const model: ModelAppend[] = [];
      appends.forEach((a, i) => {
        const firstOffset = next.get(a.stream) ?? 0;
        const op = 1000 + i;
        index.recordAppend(
          asStreamId(a.stream),
          asOffset(firstOffset),
          a.count,
          asOp(op),
          a.requestIndex,
        );
        model.push({ ...a, firstOffset, op });
        next.set(a.stream, firstOffset + a.count);
      });
      for (const entry of model) {
        for (let k = 0; k < entry.count; k++) {
          const found = index.locate(asStreamId(entry.stream), entry.firstOffset + k);
          assert.deepEqual(found, {
            op: entry.op,
            requestIndex: entry.requestIndex,
            eventIndex: k,
          });
        }
      }
      for (const stream of [1, 2, 3]) {
        const end = next.get(stream) ?? 0;
        assert.equal(index.nextOffset(asStreamId(stream)), end);
        assert.equal(index.locate(asStreamId(stream), end), undefined);
      }
    }),
    { numRuns: 200 },
  );
});

test('a stream that spans several full chunks locates at every chunk boundary', () => {
  const index = new StreamIndex();
  const stream = asStreamId(7);
  const appendCount = chunkEntryCountMax * 2 + 100;
  // Append i holds (i % 3) + 1 events, so entry i starts at firstOffsetOf(i).
  const firstOffsetOf = (i: number): number => {
    const whole = Math.floor(i / 3);
    return whole * 6 + [0, 1, 3][i % 3]!;
  };
  for (let i = 0; i < appendCount; i++) {
    index.recordAppend(stream, asOffset(firstOffsetOf(i)), (i % 3) + 1, asOp(i + 1), i % 1024);
  }
  const probes = [0, 7, 8, 9, chunkEntryCountMax - 1, chunkEntryCountMax, chunkEntryCountMax + 1];
  probes.push(2 * chunkEntryCountMax - 1, 2 * chunkEntryCountMax, appendCount - 1);
  for (const i of probes) {
    const count = (i % 3) + 1;
    for (let k = 0; k < count; k++) {
      const found = index.locate(stream, firstOffsetOf(i) + k);
      assert.deepEqual(found, { op: i + 1, requestIndex: i % 1024, eventIndex: k }, `entry ${i}`);
    }
  }
  const end = firstOffsetOf(appendCount - 1) + ((appendCount - 1) % 3) + 1;
  assert.equal(index.nextOffset(stream), end);
  assert.equal(index.locate(stream, end), undefined);
  assert.equal(index.locate(stream, -1), undefined);
  assert.equal(index.locate(asStreamId(8), 0), undefined);
  // The digest spans many hashing chunks; one changed entry anywhere changes it.
  const same = new StreamIndex();
  const other = new StreamIndex();
  for (let i = 0; i < appendCount; i++) {
    same.recordAppend(stream, asOffset(firstOffsetOf(i)), (i % 3) + 1, asOp(i + 1), i % 1024);
    const requestIndex = i === chunkEntryCountMax + 1 ? 1023 - (i % 1024) : i % 1024;
    other.recordAppend(stream, asOffset(firstOffsetOf(i)), (i % 3) + 1, asOp(i + 1), requestIndex);
  }
  assert.equal(toHex(same.digest()), toHex(index.digest()));
  assert.notEqual(toHex(other.digest()), toHex(index.digest()));
});

/** One request of a generated op: what applied, as the kernel would report it. */
type GeneratedRequest =
  | { readonly kind: 'register' }
  | { readonly kind: 'rejected' }
  | { readonly kind: 'tenant' }
  | { readonly kind: 'append'; readonly stream: number; readonly count: number };

const generatedRequest: fc.Arbitrary<GeneratedRequest> = fc.oneof(
  fc.constant({ kind: 'register' as const }),
  fc.constant({ kind: 'rejected' as const }),
  fc.constant({ kind: 'tenant' as const }),
  fc.record({
    kind: fc.constant('append' as const),
    stream: fc.integer({ min: 1, max: 3 }),
    count: fc.integer({ min: 1, max: 4 }),
  }),
);

const tenant = asTenantId(1);
const rejected: KernelOutput = {
  commandKind: 'append',
  result: { status: 'error', code: errorCodes.offset_mismatch, message: 'expected offset' },
  effects: [],
};
const tenantCreated: KernelOutput = {
  commandKind: 'create_tenant',
  result: {
    status: 'ok',
    kind: 'create_tenant',
    tenantId: tenant,
    name: 't',
    createdAtUs: asTimestampUs(1),
  },
  effects: [{ kind: 'tenant_created', tenantId: tenant, name: 't' }],
};

interface Built {
  readonly ops: CommittedOp[];
  /** Every append, as a plain model: stream, first offset, count, op, request index. */
  readonly appends: ModelAppend[];
}

/** Committed ops 1..n from generated requests; appends continue each stream's offsets. */
function buildOps(generated: readonly (readonly GeneratedRequest[])[]): Built {
  const next = new Map<number, number>();
  const appends: ModelAppend[] = [];
  const ops = generated.map((requests, index): CommittedOp => {
    const op = asOp(index + 1);
    const timestampUs = asTimestampUs(1000 + index);
    const applied = requests.map((request, requestIndex): AppliedCommand => {
      if (request.kind === 'register') return { requestIndex, output: null };
      if (request.kind === 'rejected') return { requestIndex, output: rejected };
      if (request.kind === 'tenant') return { requestIndex, output: tenantCreated };
      const firstOffset = next.get(request.stream) ?? 0;
      next.set(request.stream, firstOffset + request.count);
      appends.push({ stream: request.stream, firstOffset, count: request.count, op, requestIndex });
      const streamId = asStreamId(request.stream);
      const output: KernelOutput = {
        commandKind: 'append',
        result: {
          status: 'ok',
          kind: 'append',
          firstOffset: asOffset(firstOffset),
          count: request.count,
          chainHead: new Uint8Array(32),
        },
        effects: [
          {
            kind: 'events_appended',
            tenantId: tenant,
            streamId,
            firstOffset: asOffset(firstOffset),
            count: request.count,
            op,
            requestIndex,
            timestampUs,
          },
        ],
      };
      return { requestIndex, output };
    });
    return { op, timestampUs, applied };
  });
  return { ops, appends };
}

function assertLocatesLikeModel(index: StreamIndex, appends: readonly ModelAppend[]): void {
  const ends = new Map<number, number>();
  for (const entry of appends) {
    for (let k = 0; k < entry.count; k++) {
      const found = index.locate(asStreamId(entry.stream), entry.firstOffset + k);
      assert.deepEqual(found, { op: entry.op, requestIndex: entry.requestIndex, eventIndex: k });
    }
    ends.set(entry.stream, entry.firstOffset + entry.count);
  }
  for (const stream of [1, 2, 3]) {
    const end = ends.get(stream) ?? 0;
    assert.equal(index.nextOffset(asStreamId(stream)), end);
    assert.equal(index.locate(asStreamId(stream), end), undefined);
  }
}

test('as a view: apply() locates like the model; reset and replay give the same digest', () => {
  const opsArbitrary = fc.array(fc.array(generatedRequest, { maxLength: 4 }), { maxLength: 60 });
  fc.assert(
    fc.property(opsArbitrary, (generated) => {
      const { ops, appends } = buildOps(generated);
      const index = new StreamIndex();
      const emptyDigest = toHex(index.digest());
      for (const op of ops) {
        index.apply(op);
        assert.equal(index.appliedOp, op.op);
      }
      assertLocatesLikeModel(index, appends);
      const digest = toHex(index.digest());
      index.reset();
      assert.equal(index.appliedOp, 0);
      assert.equal(toHex(index.digest()), emptyDigest);
      for (const op of ops) index.apply(op);
      assert.equal(toHex(index.digest()), digest, 'rebuilt from the same ops: the same digest');
      assertLocatesLikeModel(index, appends);
      const last = ops[ops.length - 1];
      const lastAppends = last?.applied.some(
        (a) => a.output?.effects[0]?.kind === 'events_appended',
      );
      if (lastAppends === true) {
        const prefix = new StreamIndex();
        for (const op of ops.slice(0, -1)) prefix.apply(op);
        assert.notEqual(toHex(prefix.digest()), digest, 'one op fewer: another digest');
      }
    }),
    { numRuns: 200 },
  );
});

test('the digest is canonical: streams hash in id order, whatever order they came in', () => {
  const first = new StreamIndex();
  first.recordAppend(asStreamId(2), asOffset(0), 3, asOp(1), 0);
  first.recordAppend(asStreamId(1), asOffset(0), 1, asOp(2), 0);
  const second = new StreamIndex();
  second.recordAppend(asStreamId(1), asOffset(0), 1, asOp(2), 0);
  second.recordAppend(asStreamId(2), asOffset(0), 3, asOp(1), 0);
  assert.equal(toHex(first.digest()), toHex(second.digest()));
});

test('apply() takes only the op after its position', () => {
  const { ops } = buildOps([[{ kind: 'register' }], [], [{ kind: 'append', stream: 1, count: 2 }]]);
  const index = new StreamIndex();
  assert.throws(() => index.apply(ops[1]!), AssertionError);
  index.apply(ops[0]!);
  assert.throws(() => index.apply(ops[0]!), AssertionError);
  index.apply(ops[1]!);
  index.apply(ops[2]!);
  assert.equal(index.appliedOp, 3);
  assert.equal(index.name, 'stream_index');
});

test('appendsIn() lists the appends of a range as locate() finds them, across chunks', () => {
  // Appends of 1..4 events to three streams; enough of them (sometimes) to fill a whole chunk, so
  // walks cross chunk boundaries. For random ranges, the spans must be exactly the distinct
  // appends locate() gives for the range's offsets, in order, each with its whole extent.
  const append = fc.record({
    stream: fc.integer({ min: 1, max: 3 }),
    count: fc.integer({ min: 1, max: 4 }),
  });
  const layout = fc.oneof(
    fc.array(append, { maxLength: 200 }),
    fc.constant(Array.from({ length: chunkEntryCountMax + 40 }, () => ({ stream: 1, count: 1 }))),
  );
  const nearChunkEnd = fc.integer({ min: chunkEntryCountMax - 70, max: chunkEntryCountMax + 10 });
  const range = fc.record({
    stream: fc.integer({ min: 1, max: 4 }),
    from: fc.oneof(fc.nat(), nearChunkEnd),
    span: fc.nat(),
  });
  fc.assert(
    fc.property(layout, fc.array(range, { minLength: 1, maxLength: 5 }), (appends, ranges) => {
      const index = new StreamIndex();
      const next = new Map<number, number>();
      appends.forEach((a, i) => {
        const first = next.get(a.stream) ?? 0;
        index.recordAppend(asStreamId(a.stream), asOffset(first), a.count, asOp(i + 1), i % 7);
        next.set(a.stream, first + a.count);
      });
      for (const r of ranges) {
        const streamId = asStreamId(r.stream);
        const end = next.get(r.stream) ?? 0;
        const from = r.from % (end + 2);
        const to = from + (r.span % 60);
        const spans = new AppendSpans(Math.max(0, to - from));
        index.appendsIn(streamId, from, to, spans);
        const expected: { first: number; end: number; op: number; requestIndex: number }[] = [];
        for (let offset = from; offset < Math.min(to, end); offset++) {
          const found = index.locate(streamId, offset)!;
          const first = offset - found.eventIndex;
          if (expected.at(-1)?.op === found.op && expected.at(-1)?.first === first) continue;
          expected.push({ first, end: 0, op: found.op, requestIndex: found.requestIndex });
        }
        for (const [k, e] of expected.entries()) {
          e.end = k + 1 < expected.length ? expected[k + 1]!.first : extentEnd(index, streamId, e);
        }
        const actual = Array.from({ length: spans.count }, (_, k) => ({
          first: spans.firstOffset(k),
          end: spans.endOffset(k),
          op: spans.op(k),
          requestIndex: spans.requestIndex(k),
        }));
        assert.deepEqual(actual, expected);
      }
    }),
    { numRuns: 100 },
  );
});

/** Where the append that starts at e.first ends: the first offset past it located elsewhere. */
function extentEnd(
  index: StreamIndex,
  streamId: StreamId,
  e: { readonly first: number; readonly op: number },
): number {
  let offset = e.first;
  while (
    index.locate(streamId, offset)?.op === e.op &&
    index.locate(streamId, offset)?.eventIndex === offset - e.first
  ) {
    offset += 1;
  }
  return offset;
}

// Property tests for the replica message codec: every kind of message round-trips exactly
// (prepares byte for byte), and truncated or random bodies either decode or throw DecodeError —
// never another exception — so a hostile or damaged frame is dropped, not fatal.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../core/binary.js';
import { makePrepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import type { ReplicaMessage, SuffixEntry } from '../vsr/message.js';
import { decodeReplicaMessage, encodeReplicaMessage } from './replica_codec.js';

const checksum = fc.uint8Array({ minLength: 32, maxLength: 32 });
const small = fc.nat({ max: 1_000_000 });
const prepare = fc
  .record({ op: small, view: small, body: fc.uint8Array({ maxLength: 64 }), parent: checksum })
  .map((p) =>
    makePrepare(
      {
        replica: asReplicaIndex(1),
        cluster: 42,
        view: asView(p.view),
        requestCount: 1,
        op: asOp(p.op),
        commit: asOp(0),
        timestampUs: asTimestampUs(7),
        parent: p.parent,
      },
      p.body,
    ),
  );
const suffix: fc.Arbitrary<SuffixEntry[]> = fc.array(
  fc.record({ op: small.map(asOp), checksum, prepare: fc.option(prepare, { nil: null }) }),
  { maxLength: 3 },
);
const base = fc.record({
  replica: fc.nat({ max: 5 }).map(asReplicaIndex),
  view: small.map(asView),
});

const message: fc.Arbitrary<ReplicaMessage> = fc.oneof(
  fc.tuple(base, prepare).map(([b, p]) => ({ kind: 'prepare' as const, ...b, prepare: p })),
  fc.tuple(base, small, checksum).map(([b, op, c]) => ({
    kind: 'prepare_ok' as const,
    ...b,
    op: asOp(op),
    checksum: c,
  })),
  fc.tuple(base, small).map(([b, c]) => ({ kind: 'commit' as const, ...b, commit: asOp(c) })),
  fc.tuple(base, small).map(([b, m]) => ({ kind: 'ping' as const, ...b, pingMonotonicUs: m })),
  fc.tuple(base, small, small).map(([b, m, r]) => ({
    kind: 'pong' as const,
    ...b,
    pingMonotonicUs: m,
    pongRealtimeUs: r,
  })),
  base.map((b) => ({ kind: 'start_view_change' as const, ...b })),
  fc.tuple(base, small, small, small, small, checksum, suffix).map(([b, lv, op, cm, a, ac, s]) => ({
    kind: 'do_view_change' as const,
    ...b,
    logView: asView(lv),
    op: asOp(op),
    commitMax: asOp(cm),
    anchorOp: asOp(a),
    anchorChecksum: ac,
    suffix: s,
  })),
  fc.tuple(base, small, small, small, checksum, suffix, small).map(([b, op, cm, a, ac, s, n]) => ({
    kind: 'start_view' as const,
    ...b,
    op: asOp(op),
    commitMax: asOp(cm),
    anchorOp: asOp(a),
    anchorChecksum: ac,
    suffix: s,
    nonce: n,
  })),
  fc.tuple(base, small).map(([b, n]) => ({ kind: 'request_start_view' as const, ...b, nonce: n })),
  fc.tuple(base, small, fc.option(checksum, { nil: null })).map(([b, op, c]) => ({
    kind: 'request_prepare' as const,
    ...b,
    op: asOp(op),
    checksum: c,
  })),
  fc.tuple(base, small, small).map(([b, f, l]) => ({
    kind: 'request_prepares' as const,
    ...b,
    opFirst: asOp(f),
    opLast: asOp(l),
  })),
  fc.tuple(base, prepare, fc.boolean()).map(([b, p, c]) => ({
    kind: 'repair_prepare' as const,
    ...b,
    prepare: p,
    committed: c,
  })),
  fc
    .tuple(
      base,
      small,
      fc.option(checksum, { nil: null }),
      fc.constantFrom('not_seen' as const, 'seen_but_corrupt' as const),
    )
    .map(([b, op, c, r]) => ({
      kind: 'nack_prepare' as const,
      ...b,
      op: asOp(op),
      checksum: c,
      reason: r,
    })),
);

/** Plain data for deepEqual: byte arrays (Uint8Array, or Buffer after its toJSON) as hex. */
function normalise(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
      const json = v as { type?: unknown; data?: unknown } | null;
      if (json !== null && typeof json === 'object' && json.type === 'Buffer') {
        return Buffer.from(json.data as number[]).toString('hex');
      }
      return v;
    }),
  );
}

describe('replica message codec', () => {
  it('round-trips every message kind', () => {
    fc.assert(
      fc.property(message, (m) => {
        const { tag, body } = encodeReplicaMessage(m);
        assert.deepEqual(normalise(decodeReplicaMessage(tag, body)), normalise(m));
      }),
    );
  });

  it('throws only DecodeError on truncated or random input', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const { tag, body } = encodeReplicaMessage(m);
        try {
          decodeReplicaMessage(tag, body.subarray(0, cut % Math.max(1, body.length)));
        } catch (error) {
          assert.ok(error instanceof DecodeError, String(error));
        }
      }),
    );
    fc.assert(
      fc.property(fc.nat({ max: 20 }), fc.uint8Array({ maxLength: 300 }), (tag, body) => {
        try {
          decodeReplicaMessage(tag, body);
        } catch (error) {
          assert.ok(error instanceof DecodeError, String(error));
        }
      }),
    );
  });

  it('rejects a prepare whose header was altered', () => {
    fc.assert(
      fc.property(prepare, fc.nat({ max: 159 }), (p, at) => {
        const { tag, body } = encodeReplicaMessage({
          kind: 'prepare',
          replica: asReplicaIndex(0),
          view: asView(0),
          prepare: p,
        });
        const damaged = Buffer.from(body);
        damaged[5 + at] = (damaged[5 + at] ?? 0) ^ 0x01;
        assert.throws(() => decodeReplicaMessage(tag, damaged), DecodeError);
      }),
    );
  });
});

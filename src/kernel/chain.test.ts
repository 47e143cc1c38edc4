// Proves that the per-stream chain is exactly the definition in chain.ts, so an export can be
// verified offline with another tool: golden vectors computed independently with Python's
// hashlib, a reference built with node:crypto over explicit concatenation (both the scratch
// path and the large-event path), recomputing the chain of events appended through apply()
// and matching the returned chainHead, and that changing any one byte of one event, its
// timestamp or its order changes the head.

import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../core/checksum.js';
import {
  asClientId,
  asOffset,
  asOp,
  asStreamId,
  asTenantId,
  asTimestampUs,
} from '../core/types.js';
import type { StreamId, TenantId, TimestampUs } from '../core/types.js';
import { chainAppend, eventLink, streamGenesis } from './chain.js';
import { apply, createState } from './kernel.js';
import type { Command, CommandMeta, State } from './kernel.js';

function u64le(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
  return bytes;
}

function u32le(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return bytes;
}

function referenceLink(prev: Uint8Array, offset: number, ts: number, data: Uint8Array): string {
  const hasher = createHash('sha256');
  for (const part of [prev, u64le(offset), u64le(ts), u32le(data.length), data]) {
    hasher.update(part);
  }
  return hasher.digest('hex');
}

const audit = { actor: 'tester', reason: 'chain test', correlationId: null };
const clientId = asClientId('0123456789abcdef0123456789abcdef');

function setup(): { state: State; tenantId: TenantId; streamId: StreamId } {
  const state = createState();
  const meta: CommandMeta = {
    op: asOp(1),
    timestampUs: asTimestampUs(10),
    clientId,
    requestIndex: 0,
  };
  const tenant = apply(state, { kind: 'create_tenant', name: 't', audit }, meta).result;
  assert.ok(tenant.status === 'ok' && tenant.kind === 'create_tenant');
  const tenantId = tenant.tenantId;
  const create: Command = { kind: 'create_stream', tenantId, name: 's', dataClass: 'PHI', audit };
  const stream = apply(state, create, { ...meta, requestIndex: 1 }).result;
  assert.ok(stream.status === 'ok' && stream.kind === 'create_stream');
  return { state, tenantId, streamId: stream.streamId };
}

/** Appends batches at timestamps 1000, 2000, ...; returns the final head. */
function appendAll(batches: Uint8Array[][]): Uint8Array {
  const { state, tenantId, streamId } = setup();
  let head = streamGenesis(tenantId, streamId);
  for (const [i, events] of batches.entries()) {
    const meta: CommandMeta = {
      op: asOp(i + 2),
      timestampUs: asTimestampUs((i + 1) * 1000),
      clientId,
      requestIndex: 0,
    };
    const command: Command = {
      kind: 'append',
      tenantId,
      streamId,
      expectedOffset: null,
      events,
      audit,
    };
    const result = apply(state, command, meta).result;
    assert.ok(result.status === 'ok' && result.kind === 'append');
    head = result.chainHead;
  }
  return head;
}

const batchesArb = fc.array(
  fc.array(fc.uint8Array({ maxLength: 48 }), { minLength: 1, maxLength: 5 }),
  {
    minLength: 1,
    maxLength: 6,
  },
);

describe('stream chain', () => {
  it('matches golden vectors computed with Python hashlib', () => {
    const genesis = streamGenesis(asTenantId(1), asStreamId(1));
    assert.equal(
      toHex(genesis),
      '9230ed2140c8564ddccb4949e5c17789270c4d7c9b6c4f088398a819f646d1b4',
    );
    const ts = asTimestampUs(1_700_000_000_000_000);
    const hello = new TextEncoder().encode('hello');
    const link0 = eventLink(genesis, asOffset(0), ts, hello);
    assert.equal(toHex(link0), '8ff49fa1850f5f903e8aa403647e8e30b3055266c190e5d9463c39f0c76b929d');
    const link1 = eventLink(link0, asOffset(1), ts, new Uint8Array(0));
    assert.equal(toHex(link1), 'd18ab58dc3fe7c67b1bb2465bd67a8be64e1d078b120bc9215f96319a84e7746');
    const big = streamGenesis(asTenantId(2 ** 40 + 3), asStreamId(2 ** 33 + 7));
    assert.equal(toHex(big), '466e745480042544f38ba08b08b8bf7504af1217a376832a6ffa5026d545ce30');
  });

  it('eventLink equals the reference for small and large events', () => {
    const sizes = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 4000, max: 9000 }));
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.maxSafeNat(),
        fc.maxSafeNat(),
        sizes,
        fc.integer({ min: 0, max: 255 }),
        (prev, offset, ts, size, fill) => {
          const data = new Uint8Array(size).fill(fill);
          const link = eventLink(prev, asOffset(offset), asTimestampUs(ts), data);
          assert.equal(toHex(link), referenceLink(prev, offset, ts, data));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the chainHead returned by append is the chain recomputed from the events', () => {
    fc.assert(
      fc.property(batchesArb, (batches) => {
        const head = appendAll(batches);
        const { tenantId, streamId } = setup();
        let link = streamGenesis(tenantId, streamId);
        let offset = 0;
        for (const [i, events] of batches.entries()) {
          for (const data of events) {
            const expected = referenceLink(link, offset, (i + 1) * 1000, data);
            link = eventLink(link, asOffset(offset), asTimestampUs((i + 1) * 1000), data);
            assert.equal(toHex(link), expected);
            offset += 1;
          }
        }
        assert.equal(toHex(head), toHex(link));
      }),
      { numRuns: 100 },
    );
  });

  it('changing one byte of one event changes the head', () => {
    fc.assert(
      fc.property(batchesArb, fc.nat(), fc.nat(), fc.nat(), (batches, b, e, i) => {
        const nonEmpty = batches.flat().filter((event) => event.length > 0);
        fc.pre(nonEmpty.length > 0);
        const original = toHex(appendAll(batches));
        const target = nonEmpty[e % nonEmpty.length];
        assert.ok(target !== undefined);
        const position = i % target.length;
        target[position] = ((target[position] ?? 0) + 1 + (b % 255)) % 256;
        assert.notEqual(toHex(appendAll(batches)), original);
      }),
      { numRuns: 100 },
    );
  });

  it('the head depends on timestamps, offsets and the stream', () => {
    const data = [new Uint8Array([1]), new Uint8Array([2])];
    const genesis = streamGenesis(asTenantId(1), asStreamId(1));
    const at = (ts: number): string =>
      toHex(chainAppend(genesis, asOffset(0), ts as TimestampUs, data));
    assert.notEqual(at(1), at(2));
    const swapped = toHex(chainAppend(genesis, asOffset(0), asTimestampUs(1), data.toReversed()));
    assert.notEqual(swapped, at(1));
    assert.notEqual(toHex(chainAppend(genesis, asOffset(5), asTimestampUs(1), data)), at(1));
    assert.notEqual(toHex(streamGenesis(asTenantId(1), asStreamId(2))), toHex(genesis));
    assert.notEqual(toHex(streamGenesis(asTenantId(2), asStreamId(1))), toHex(genesis));
  });
});

// Proves that the offline chain verifier agrees with the chain definition of kernel/chain.ts,
// written out again here with node:crypto, and that it reports a changed event, a gap in the
// offsets and a head that belongs to another stream.

import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyStreamChain } from './chain_verify.js';
import type { ChainEvent } from './chain_verify.js';

function u64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

/** The chain definition of kernel/chain.ts, written out again with node:crypto. */
function referenceChain(tenantId: number, streamId: number, events: ChainEvent[]): Buffer {
  let link = createHash('sha256')
    .update('kimberlite-ts/stream-chain/v1')
    .update(u64(tenantId))
    .update(u64(streamId))
    .digest();
  for (const event of events) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(event.data.length);
    link = createHash('sha256')
      .update(link)
      .update(u64(event.offset))
      .update(u64(event.timestampUs))
      .update(length)
      .update(event.data)
      .digest();
  }
  return link;
}

describe('verifyStreamChain', () => {
  const events: ChainEvent[] = ['one', 'two', 'three'].map((text, offset) => ({
    offset,
    timestampUs: 1_700_000_000_000_000 + offset,
    data: new TextEncoder().encode(text),
  }));
  const head = referenceChain(3, 7, events).toString('hex');

  it('accepts a correct chain', () => {
    const verdict = verifyStreamChain({ tenantId: 3, streamId: 7, events, expectedHead: head });
    assert.deepEqual(verdict, { ok: true, eventCount: 3, chainHead: head });
  });

  it('reports a changed event, a gap and a wrong head', () => {
    const changed = events.map((e, i) => (i === 1 ? { ...e, data: new Uint8Array([1]) } : e));
    const tampered = verifyStreamChain({
      tenantId: 3,
      streamId: 7,
      events: changed,
      expectedHead: head,
    });
    assert.equal(tampered.ok, false);
    const gap = verifyStreamChain({ tenantId: 3, streamId: 7, events: [events[0]!, events[2]!] });
    assert.ok(!gap.ok && gap.offset === 1, 'gap found at offset 1');
    const otherStream = verifyStreamChain({ tenantId: 3, streamId: 8, events, expectedHead: head });
    assert.ok(!otherStream.ok && otherStream.offset === null);
  });
});

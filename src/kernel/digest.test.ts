// Proves that the kernel is deterministic and that stateDigest sees every change: the same
// random command sequence applied to two fresh states (once directly, once after each command
// went through the wire codec) gives identical digests; changing the sequence (one more
// command, another timestamp, another name) gives a different digest; and the digest matches
// golden values computed independently with Python from the encoding documented in digest.ts.

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
import {
  apply,
  createState,
  dataClasses,
  decodeCommand,
  encodeCommand,
  stateDigest,
} from './kernel.js';
import type { Command, CommandMeta, State } from './kernel.js';

const clientId = asClientId('ffffffffffffffffffffffffffffffff');
const audit = { actor: 'auditor', reason: 'digest test', correlationId: 'corr-1' };

function metaAt(index: number, timestampBase = 1_000_000): CommandMeta {
  const op = asOp(index + 1);
  return { op, timestampUs: asTimestampUs(timestampBase + index * 10), clientId, requestIndex: 0 };
}

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc
    .constantFrom('a', 'b', 'c', '')
    .map((name): Command => ({ kind: 'create_tenant', name, audit })),
  fc
    .tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.constantFrom('s', 't', 'u'),
      fc.constantFrom(...dataClasses),
    )
    .map(([tenantId, name, dataClass]): Command => ({
      kind: 'create_stream',
      tenantId: asTenantId(tenantId),
      name,
      dataClass,
      audit,
    })),
  fc
    .tuple(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 6 }),
      fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
      fc.array(fc.uint8Array({ maxLength: 16 }), { maxLength: 3 }),
    )
    .map(([tenantId, streamId, expected, events]): Command => ({
      kind: 'append',
      tenantId: asTenantId(tenantId),
      streamId: asStreamId(streamId),
      expectedOffset: expected === null ? null : asOffset(expected),
      events,
      audit,
    })),
);
const commandsArb = fc.array(commandArb, { maxLength: 40, size: 'max' });

function run(commands: readonly Command[], timestampBase?: number): State {
  const state = createState();
  commands.forEach((command, index) => apply(state, command, metaAt(index, timestampBase)));
  return state;
}

function okCount(commands: readonly Command[]): number {
  const state = createState();
  return commands.filter((c, i) => apply(state, c, metaAt(i)).result.status === 'ok').length;
}

describe('determinism and stateDigest', () => {
  it('gives identical digests for the same sequence, also through the codec', () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        const first = toHex(stateDigest(run(commands)));
        assert.equal(toHex(stateDigest(run(commands))), first);
        const decoded = commands.map((command) => decodeCommand(encodeCommand(command)));
        assert.equal(toHex(stateDigest(run(decoded))), first);
      }),
      { numRuns: 200 },
    );
  });

  it('gives a different digest after one more successful command', () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        const before = toHex(stateDigest(run(commands)));
        const extra: Command = { kind: 'create_tenant', name: 'fresh', audit };
        assert.notEqual(toHex(stateDigest(run([...commands, extra]))), before);
      }),
      { numRuns: 200 },
    );
  });

  it('gives a different digest when timestamps differ', () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        fc.pre(okCount(commands) > 0);
        const one = toHex(stateDigest(run(commands, 1_000_000)));
        assert.notEqual(toHex(stateDigest(run(commands, 2_000_000))), one);
      }),
      { numRuns: 200 },
    );
  });

  it('gives a different digest when a name differs', () => {
    const base: Command[] = [{ kind: 'create_tenant', name: 'acme', audit }];
    const other: Command[] = [{ kind: 'create_tenant', name: 'acme2', audit }];
    assert.notEqual(toHex(stateDigest(run(base))), toHex(stateDigest(run(other))));
  });

  it('matches golden digests computed with Python', () => {
    const empty = createState();
    assert.equal(
      toHex(stateDigest(empty)),
      'a153b0cb3eb71d1e944cb2660d572465d2f9d3486e84717fc6bed80b602b3f5a',
    );
    const state = createState();
    const m = (ts: number): CommandMeta => ({ ...metaAt(ts), timestampUs: asTimestampUs(ts) });
    apply(state, { kind: 'create_tenant', name: 'acme', audit }, m(5));
    const tenantId = asTenantId(1);
    const streamId = asStreamId(1);
    const create: Command = {
      kind: 'create_stream',
      tenantId,
      name: 'orders',
      dataClass: 'Financial',
      audit,
    };
    apply(state, create, m(6));
    const events = [new TextEncoder().encode('hi')];
    const append: Command = {
      kind: 'append',
      tenantId,
      streamId,
      expectedOffset: null,
      events,
      audit,
    };
    apply(state, append, m(7));
    assert.equal(
      toHex(stateDigest(state)),
      '47411ccbad921317ffc6b2b81b4670d39e9428755af6cf3105b065dbbc9e59dc',
    );
  });

  it('digests a state larger than one hashing chunk the same way twice', () => {
    const commands: Command[] = [{ kind: 'create_tenant', name: 'big', audit }];
    for (let i = 0; i < 1500; i++) {
      const name = `stream-${i}-${'n'.repeat(60)}`;
      commands.push({
        kind: 'create_stream',
        tenantId: asTenantId(1),
        name,
        dataClass: 'PII',
        audit,
      });
    }
    const one = stateDigest(run(commands));
    assert.equal(toHex(stateDigest(run(commands))), toHex(one));
    assert.notEqual(toHex(stateDigest(run(commands.slice(0, -1)))), toHex(one));
  });
});

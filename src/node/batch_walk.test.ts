// Proves BatchWalk against the decoders whose layouts it walks: for random batches (registers,
// appends and other commands, with random client ids and request numbers) and a random ascending
// choice of requests,
// - to(i) finds exactly the body decodeBatch() gives for request i;
// - toAppend(i) on an append (random audits, ASCII and not, with and without a correlation id;
//   an expected offset or none; stream ids past 2^32; events of random sizes, empty ones too)
//   finds the stream id, the event count and the very events decodeCommand() gives;
// and a walk backwards, past the batch, or toAppend() on a request that is not an append is
// refused as the programmer error it is.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AssertionError } from '../core/assert.js';
import { asClientId, asOffset, asRequestNumber, asStreamId, asTenantId } from '../core/types.js';
import { decodeCommand, encodeCommand } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { decodeBatch, encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { BatchWalk, u32 } from './batch_walk.js';

const text = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }));
const audit = fc.record({
  actor: text,
  reason: text,
  correlationId: fc.option(text, { nil: null }),
});
const append: fc.Arbitrary<Command> = fc.record({
  kind: fc.constant('append' as const),
  tenantId: fc.nat().map(asTenantId),
  streamId: fc.integer({ min: 0, max: 2 ** 40 }).map(asStreamId),
  expectedOffset: fc.option(fc.integer({ min: 0, max: 2 ** 40 }).map(asOffset), { nil: null }),
  events: fc.array(fc.uint8Array({ maxLength: 50 }), { minLength: 1, maxLength: 5 }),
  audit,
});
const other: fc.Arbitrary<Command> = fc.record({
  kind: fc.constant('create_tenant' as const),
  name: fc.stringMatching(/^[a-z]{1,10}$/),
  audit,
});
const request: fc.Arbitrary<{ request: Request; command: Command | null }> = fc
  .record({
    clientId: fc.stringMatching(/^[0-9a-f]{32}$/).map(asClientId),
    requestNumber: fc.nat().map(asRequestNumber),
    command: fc.oneof(fc.constant(null), append, other),
  })
  .map(({ clientId, requestNumber, command }) => ({
    command,
    request: {
      clientId,
      requestNumber,
      operation: command === null ? 'register' : 'command',
      body: command === null ? new Uint8Array(0) : encodeCommand(command),
    },
  }));

test('the walk finds the bodies and the appends decodeBatch() and decodeCommand() give', () => {
  fc.assert(
    fc.property(
      fc.array(request, { minLength: 1, maxLength: 30 }),
      fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
      (requests, chosen) => {
        const body = encodeBatch(requests.map((r) => r.request));
        const decoded = decodeBatch(body);
        const walk = new BatchWalk(body);
        requests.forEach(({ command }, i) => {
          if (!chosen[i]) return;
          if (command?.kind !== 'append') {
            walk.to(i);
            const found = walk.body.subarray(walk.bodyStart, walk.bodyEnd);
            assert.deepEqual(Buffer.from(found), Buffer.from(decoded[i]!.body), `request ${i}`);
            return;
          }
          walk.toAppend(i);
          const expected = decodeCommand(decoded[i]!.body);
          assert.equal(expected.kind, 'append');
          if (expected.kind !== 'append') return;
          assert.equal(walk.streamId, expected.streamId);
          assert.equal(walk.eventCount, expected.events.length);
          let position = walk.eventsStart;
          for (const event of expected.events) {
            const sizeBytes = u32(body, position);
            const found = body.subarray(position + 4, position + 4 + sizeBytes);
            assert.deepEqual(Buffer.from(found), Buffer.from(event));
            position += 4 + sizeBytes;
          }
          assert.equal(position, walk.bodyEnd, 'the events end the append');
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('a walk only moves forward, stays in its batch, and takes only appends as appends', () => {
  const requests: Request[] = [
    {
      clientId: asClientId('0'.repeat(32)),
      requestNumber: asRequestNumber(1),
      operation: 'register',
      body: new Uint8Array(0),
    },
    {
      clientId: asClientId('1'.repeat(32)),
      requestNumber: asRequestNumber(1),
      operation: 'command',
      body: encodeCommand({
        kind: 'create_tenant',
        name: 't',
        audit: { actor: 'a', reason: 'r', correlationId: null },
      }),
    },
  ];
  const body = encodeBatch(requests);
  const walk = new BatchWalk(body);
  walk.to(1);
  assert.throws(() => walk.to(0), AssertionError);
  assert.throws(() => new BatchWalk(body).to(2), AssertionError);
  assert.throws(() => new BatchWalk(body).toAppend(1), AssertionError);
});

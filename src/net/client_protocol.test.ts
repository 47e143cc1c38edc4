// Property tests for the client protocol codec: every message round-trips, and decoding
// arbitrary or truncated bytes either yields a message or throws DecodeError — never another
// exception, so the server can always answer bad input with KMB_ERR_FRAME_MALFORMED.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../core/binary.js';
import { errorCodes } from '../core/errors.js';
import {
  asClientId,
  asOffset,
  asOp,
  asRequestNumber,
  asStreamId,
  asTenantId,
  asTimestampUs,
  asView,
} from '../core/types.js';
import type { TraceParent } from '../core/trace_parent.js';
import { dataClasses } from '../kernel/kernel.js';
import {
  decodeMessage,
  encodeMessage,
  encodeMessageFrame,
  messageKind,
} from './client_protocol.js';
import { encodeFrame } from './frame.js';
import type { ClientMessage } from './client_protocol.js';

const u32 = fc.nat({ max: 0xffff_ffff });
const safe = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const clientId = fc
  .uint8Array({ minLength: 16, maxLength: 16 })
  .map((b) => asClientId(Buffer.from(b).toString('hex')));
const name = fc.string({ maxLength: 40 });
const bytes = fc.uint8Array({ maxLength: 64 });

const message: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc
    .record({ protocolVersion: fc.nat({ max: 0xffff }), clusterName: name })
    .map((hello) => ({ kind: 'hello' as const, hello })),
  fc
    .record({
      clientId,
      requestNumber: safe,
      operation: fc.constantFrom('register' as const, 'command' as const),
      body: bytes,
    })
    .map((r) => ({
      kind: 'request' as const,
      request: { ...r, requestNumber: asRequestNumber(r.requestNumber) },
    })),
  fc
    .record({ clientId, requestNumber: safe, op: safe, timestampUs: safe, result: bytes })
    .map((r) => ({
      kind: 'reply' as const,
      reply: {
        clientId: r.clientId,
        requestNumber: asRequestNumber(r.requestNumber),
        op: asOp(r.op),
        timestampUs: asTimestampUs(r.timestampUs),
        result: r.result,
      },
    })),
  fc
    .record({
      queryId: u32,
      code: fc.constantFrom(...Object.values(errorCodes)),
      message: name,
      leaderHint: fc.integer({ min: -1, max: 5 }),
    })
    .map((e) => ({
      kind: 'error' as const,
      error: {
        scope: { kind: 'query' as const, queryId: e.queryId },
        code: e.code,
        message: e.message,
        leaderHint: e.leaderHint,
      },
    })),
  fc
    .record({ queryId: u32, tenantId: safe, streamId: safe, fromOffset: safe, limit: u32 })
    .map((q) => ({
      kind: 'query' as const,
      query: {
        queryId: q.queryId,
        query: {
          kind: 'read_stream' as const,
          tenantId: asTenantId(q.tenantId),
          streamId: asStreamId(q.streamId),
          fromOffset: asOffset(q.fromOffset),
          limit: q.limit,
        },
      },
    })),
  fc
    .record({
      queryId: u32,
      events: fc.array(fc.record({ offset: safe, timestampUs: safe, data: bytes }), {
        maxLength: 5,
      }),
      nextOffset: safe,
    })
    .map((r) => ({
      kind: 'query_result' as const,
      queryResult: {
        queryId: r.queryId,
        result: {
          kind: 'read_stream' as const,
          nextOffset: asOffset(r.nextOffset),
          events: r.events.map((e) => ({
            offset: asOffset(e.offset),
            timestampUs: asTimestampUs(e.timestampUs),
            data: e.data,
          })),
        },
      },
    })),
  fc
    .record({
      queryId: u32,
      streams: fc.array(
        fc.record({
          id: safe,
          tenant: safe,
          name,
          dc: fc.constantFrom(...dataClasses),
          at: safe,
          next: safe,
          head: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        }),
        { maxLength: 4 },
      ),
    })
    .map((r) => ({
      kind: 'query_result' as const,
      queryResult: {
        queryId: r.queryId,
        result: {
          kind: 'list_streams' as const,
          streams: r.streams.map((s) => ({
            streamId: asStreamId(s.id),
            tenantId: asTenantId(s.tenant),
            name: s.name,
            dataClass: s.dc,
            createdAtUs: asTimestampUs(s.at),
            nextOffset: asOffset(s.next),
            chainHead: s.head,
          })),
        },
      },
    })),
  fc
    .record({ nodeId: fc.nat({ max: 5 }), view: u32, leader: fc.integer({ min: -1, max: 5 }) })
    .map((h) => ({
      kind: 'hello_ok' as const,
      helloOk: {
        protocolVersion: 1,
        clusterName: 'c',
        nodeId: h.nodeId,
        replicaCount: 3,
        view: asView(h.view),
        leader: h.leader,
      },
    })),
);

function normalise(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
    ),
  );
}

describe('client protocol codec', () => {
  it('round-trips every message', () => {
    fc.assert(
      fc.property(message, (m) => {
        const decoded = decodeMessage(messageKind[m.kind], encodeMessage(m));
        assert.deepEqual(normalise(decoded), normalise(m));
      }),
    );
  });

  it('frames through the reused writer exactly as through a fresh one, call after call', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 5 }), (messages) => {
        const frames = messages.map((m) => encodeMessageFrame(m));
        messages.forEach((m, index) => {
          const expected = encodeFrame(messageKind[m.kind], encodeMessage(m));
          assert.deepEqual(Buffer.from(frames[index] ?? []), Buffer.from(expected));
        });
      }),
    );
  });

  it('throws only DecodeError on truncated or random input', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const body = encodeMessage(m);
        const truncated = body.subarray(0, cut % Math.max(1, body.length));
        try {
          decodeMessage(messageKind[m.kind], truncated);
        } catch (error) {
          assert.ok(error instanceof DecodeError, String(error));
        }
      }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9 }),
        fc.uint8Array({ maxLength: 100 }),
        (kind, body) => {
          try {
            decodeMessage(kind, body);
          } catch (error) {
            assert.ok(error instanceof DecodeError, String(error));
          }
        },
      ),
    );
  });
});

const hexId = (sizeBytes: number): fc.Arbitrary<string> =>
  fc
    .uint8Array({ minLength: sizeBytes, maxLength: sizeBytes })
    .filter((b) => b.some((byte) => byte !== 0))
    .map((b) => Buffer.from(b).toString('hex'));
const traceParent: fc.Arbitrary<TraceParent> = fc.record({
  traceId: hexId(16),
  spanId: hexId(8),
  flags: fc.nat({ max: 0xff }),
});
const traced: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.record({ clientId, requestNumber: safe, body: bytes, traceParent }).map((r) => ({
    kind: 'request' as const,
    request: {
      clientId: r.clientId,
      requestNumber: asRequestNumber(r.requestNumber),
      operation: 'command' as const,
      body: r.body,
      traceParent: r.traceParent,
    },
  })),
  fc.record({ queryId: u32, stale: fc.option(u32), traceParent }).map((q) => ({
    kind: 'query' as const,
    query: {
      queryId: q.queryId,
      query: { kind: 'list_tenants' as const },
      ...(q.stale === null ? {} : { consistency: { kind: 'stale' as const, lagOpsMax: q.stale } }),
      traceParent: q.traceParent,
    },
  })),
);

/** The message without its trace context: what a client predating trace contexts sends. */
function untraced(m: ClientMessage): ClientMessage {
  if (m.kind === 'request') {
    const { traceParent: _dropped, ...request } = m.request;
    return { kind: 'request', request };
  }
  if (m.kind === 'query') {
    const { traceParent: _dropped, ...query } = m.query;
    return { kind: 'query', query };
  }
  return m;
}

describe('client protocol trace context', () => {
  it('round-trips requests and queries that carry a traceparent', () => {
    // Proves the trailing trace context survives encode/decode next to stale consistency.
    fc.assert(
      fc.property(traced, (m) => {
        const decoded = decodeMessage(messageKind[m.kind], encodeMessage(m));
        assert.deepEqual(normalise(decoded), normalise(m));
      }),
    );
  });

  it('keeps frames without a trace context byte-identical and decodable', () => {
    // Proves old frames are unchanged: dropping the context yields a prefix of the traced
    // encoding (the trailer is appended, 26 bytes), and that prefix decodes without a context.
    fc.assert(
      fc.property(traced, (m) => {
        const plain = encodeMessage(untraced(m));
        const withContext = encodeMessage(m);
        assert.equal(withContext.length, plain.length + 26);
        assert.deepEqual(Buffer.from(withContext.subarray(0, plain.length)), Buffer.from(plain));
        const decoded = decodeMessage(messageKind[m.kind], plain);
        assert.deepEqual(normalise(decoded), normalise(untraced(m)));
      }),
    );
  });

  it('rejects zero ids, repeated or unknown trailing items with DecodeError', () => {
    // Proves a hostile trailer is bad input (KMB_ERR_FRAME_MALFORMED), never an exception.
    fc.assert(
      fc.property(
        traced,
        fc.constantFrom('zero-trace', 'zero-span', 'repeat', 'unknown'),
        (m, how) => {
          const body = Buffer.from(encodeMessage(m));
          const trailer = body.length - 26;
          if (how === 'zero-trace') body.fill(0, trailer + 1, trailer + 17);
          if (how === 'zero-span') body.fill(0, trailer + 17, trailer + 25);
          const extra = how === 'repeat' ? body.subarray(trailer) : Buffer.from([9]);
          const bad = how.startsWith('zero') ? body : Buffer.concat([body, extra]);
          assert.throws(() => decodeMessage(messageKind[m.kind], bad), DecodeError);
        },
      ),
    );
  });
});

// The exchanges written to testdata/protocol/ as golden transcripts (scripts/golden.mjs): a few
// conversations of the client protocol and of the replica protocol, built here as messages and
// encoded with the real codecs. The values are fixed (no clock, no randomness), so the same code
// always writes the same bytes; a change in the files therefore means a change on the wire.
// Every message kind the issue names appears at least once (golden.test.ts checks the list).

import { isDeepStrictEqual } from 'node:util';
import { sha256, toHex } from '../core/checksum.js';
import { clusterIdFromName, makePrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import {
  asClientId,
  asOffset,
  asOp,
  asReplicaIndex,
  asRequestNumber,
  asStreamId,
  asTenantId,
  asTimestampUs,
  asView,
} from '../core/types.js';
import { encodeCommand, encodeResult } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import type { ClientMessage } from './client_protocol.js';
import { protocolVersion } from './client_protocol.js';
import {
  frameToMeaning,
  meaningToFrame,
  messageMeaning,
  messageToFrame,
} from './golden.test-support.js';
import type { Protocol, ReplicaFrame, Transcript } from './golden.test-support.js';
import { replicaProtocolVersion } from './replica_bus.js';

interface Step {
  readonly title: string;
  readonly notes: readonly string[];
  readonly message: ClientMessage | ReplicaFrame;
}

interface Exchange {
  /** The file name under testdata/protocol/. */
  readonly file: string;
  readonly protocol: Protocol;
  readonly about: readonly string[];
  readonly steps: readonly Step[];
}

const clusterName = 'default';
const cluster = clusterIdFromName(clusterName);
const clientId = asClientId('a1b2c3d4e5f60718293a4b5c6d7e8f90');
const tenantId = asTenantId(1);
const streamId = asStreamId(2);
const timestampUs = asTimestampUs(1_780_000_000_000_000);
const audit = { actor: 'dr.ng', reason: 'admission', correlationId: 'visit-7' } as const;
const events = ['{"type":"admitted","bed":12}', '{"type":"vitals","hr":72}'].map((text) =>
  new TextEncoder().encode(text),
);
const appendCommand: Command = {
  kind: 'append',
  tenantId,
  streamId,
  expectedOffset: asOffset(0),
  events,
  audit,
};
const chainHead = sha256(new TextEncoder().encode('golden: chain head after offset 1'));
const traceParent = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' };

const fileAbout = (what: string): string[] => [
  `Golden transcript: ${what}.`,
  'Each message is one frame: its bytes (hex) above its meaning (json). Format and how to',
  'refresh after an intended wire change: testdata/README.md. Written by scripts/golden.mjs;',
  'do not edit by hand (src/net/golden.test.ts checks the bytes against the meaning).',
];

function clientHandshake(): Exchange {
  const helloOk = { protocolVersion, clusterName, nodeId: 1, replicaCount: 3 };
  return {
    file: 'client_handshake.txt',
    protocol: 'client',
    about: fileAbout('a client says hello to a node, once right and once to the wrong cluster'),
    steps: [
      {
        title: 'client -> node: hello',
        notes: ['The protocol version the client speaks and the cluster it expects.'],
        message: { kind: 'hello', hello: { protocolVersion, clusterName } },
      },
      {
        title: 'node -> client: hello_ok',
        notes: ['Replica 1 of 3 answers: view 6, whose leader is replica 0 (6 mod 3).'],
        message: { kind: 'hello_ok', helloOk: { ...helloOk, view: asView(6), leader: 0 } },
      },
      {
        title: 'client -> node: hello (another cluster)',
        notes: ['A client configured for the cluster "staging".'],
        message: { kind: 'hello', hello: { protocolVersion, clusterName: 'staging' } },
      },
      {
        title: 'node -> client: error (connection scope), then the node closes the connection',
        notes: ['A connection error has no leader hint (-1, sent as 0xff).'],
        message: {
          kind: 'error',
          error: {
            scope: { kind: 'connection' },
            code: 'KMB_ERR_CLUSTER_MISMATCH',
            message: 'this node belongs to cluster "default", not "staging"',
            leaderHint: -1,
          },
        },
      },
    ],
  };
}

function clientAppend(): Exchange {
  const requestNumber = asRequestNumber(1);
  return {
    file: 'client_append.txt',
    protocol: 'client',
    about: fileAbout('a client session registers and appends two events to a stream'),
    steps: [
      {
        title: 'client -> leader: request 0 (register)',
        notes: ['Request number 0 registers the session; its body is empty.'],
        message: {
          kind: 'request',
          request: {
            clientId,
            requestNumber: asRequestNumber(0),
            operation: 'register',
            body: new Uint8Array(0),
          },
        },
      },
      {
        title: 'leader -> client: reply to request 0',
        notes: ['The registration committed at op 41; a register reply has an empty result.'],
        message: {
          kind: 'reply',
          reply: {
            clientId,
            requestNumber: asRequestNumber(0),
            op: asOp(41),
            timestampUs,
            result: new Uint8Array(0),
          },
        },
      },
      {
        title: 'client -> leader: request 1 (append, with a trace context)',
        notes: [
          'The body is an encoded kernel command (decoded under "kernel_command"): two events',
          'appended at expected offset 0. The W3C trace context is a trailing item (tag 2).',
        ],
        message: {
          kind: 'request',
          request: {
            clientId,
            requestNumber,
            operation: 'command',
            body: encodeCommand(appendCommand),
            traceParent: { ...traceParent, flags: 1 },
          },
        },
      },
      {
        title: 'leader -> client: reply to request 1',
        notes: ['The kernel result (decoded under "kernel_result"): offsets 0 and 1, chain head.'],
        message: {
          kind: 'reply',
          reply: {
            clientId,
            requestNumber,
            op: asOp(42),
            timestampUs: asTimestampUs(timestampUs + 1_500),
            result: encodeResult({
              status: 'ok',
              kind: 'append',
              firstOffset: asOffset(0),
              count: 2,
              chainHead,
            }),
          },
        },
      },
    ],
  };
}

function clientQuery(): Exchange {
  const readQuery = { kind: 'read_stream', tenantId, streamId, fromOffset: asOffset(0) } as const;
  return {
    file: 'client_query.txt',
    protocol: 'client',
    about: fileAbout('reads: a linearizable stream read, and a stale read a follower refuses'),
    steps: [
      {
        title: 'client -> leader: query 7 (read_stream, linearizable)',
        notes: ['No trailing items: a query without them is linearizable.'],
        message: { kind: 'query', query: { queryId: 7, query: { ...readQuery, limit: 100 } } },
      },
      {
        title: 'leader -> client: query_result 7',
        notes: ['The events with their offsets and commit timestamps; nextOffset is 2.'],
        message: {
          kind: 'query_result',
          queryResult: {
            queryId: 7,
            result: {
              kind: 'read_stream',
              nextOffset: asOffset(2),
              events: events.map((data, index) => ({
                offset: asOffset(index),
                timestampUs: asTimestampUs(timestampUs + 1_500),
                data,
              })),
            },
          },
        },
      },
      {
        title: 'client -> follower: query 8 (list_streams, stale up to 8 ops)',
        notes: ['Trailing item tag 1: stale consistency with its lag bound.'],
        message: {
          kind: 'query',
          query: {
            queryId: 8,
            query: { kind: 'list_streams', tenantId },
            consistency: { kind: 'stale', lagOpsMax: 8 },
          },
        },
      },
      {
        title: 'follower -> client: error (query scope)',
        notes: ['The follower trails by more than 8 ops; it names no leader here.'],
        message: {
          kind: 'error',
          error: {
            scope: { kind: 'query', queryId: 8 },
            code: 'KMB_ERR_NOT_READY',
            message: 'replica trails its known commit by 12 ops (bound 8); retry shortly',
            leaderHint: -1,
          },
        },
      },
    ],
  };
}

function clientErrors(): Exchange {
  return {
    file: 'client_errors.txt',
    protocol: 'client',
    about: fileAbout('a request sent to a follower, answered with a request-scoped error'),
    steps: [
      {
        title: 'client -> follower: request 3 (create_stream)',
        notes: ['The kernel command creates the stream "vitals" of data class PHI.'],
        message: {
          kind: 'request',
          request: {
            clientId,
            requestNumber: asRequestNumber(3),
            operation: 'command',
            body: encodeCommand({
              kind: 'create_stream',
              tenantId,
              name: 'vitals',
              dataClass: 'PHI',
              audit: { ...audit, correlationId: null },
            }),
          },
        },
      },
      {
        title: 'follower -> client: error (request scope, not leader)',
        notes: ['The leader hint names replica 0: the client retries the request there.'],
        message: {
          kind: 'error',
          error: {
            scope: { kind: 'request', clientId, requestNumber: asRequestNumber(3) },
            code: 'KMB_ERR_NOT_LEADER',
            message: 'replica 0 is leader',
            leaderHint: 0,
          },
        },
      },
    ],
  };
}

/** A prepare of the append above at `op`, made by replica 0 in view 6. */
function goldenPrepare(op: number, parent: Uint8Array, commit: number): Prepare {
  const requests: Request[] = [
    {
      clientId,
      requestNumber: asRequestNumber(1),
      operation: 'command',
      body: encodeCommand(appendCommand),
    },
  ];
  const fields = {
    replica: asReplicaIndex(0),
    cluster,
    view: asView(6),
    requestCount: requests.length,
    op: asOp(op),
    commit: asOp(commit),
    timestampUs: asTimestampUs(timestampUs + 1_000),
    parent,
  };
  return makePrepare(fields, encodeBatch(requests));
}

const parent41 = sha256(new TextEncoder().encode('golden: the checksum of op 41'));
const prepare42 = goldenPrepare(42, parent41, 41);
const prepare43 = goldenPrepare(43, prepare42.header.checksum, 42);
const view = asView(6);
const r = asReplicaIndex;

function replicaNormal(): Exchange {
  return {
    file: 'replica_normal.txt',
    protocol: 'replica',
    about: fileAbout('the replica hello, then one op replicated and committed in view 6'),
    steps: [
      {
        title: 'replica 1 -> replica 2: replica_hello',
        notes: ['The lower index dials; the accepting side answers with its own hello.'],
        message: {
          kind: 'replica_hello',
          hello: {
            protocolVersion: replicaProtocolVersion,
            clusterName,
            cluster,
            replica: 1,
            replicaCount: 3,
          },
        },
      },
      {
        title: 'primary 0 -> backups: prepare op 42',
        notes: [
          'The prepare travels as its journal record: the 160-byte header (shown decoded) and',
          'its body, a batch of client requests (shown decoded under "batch").',
        ],
        message: { kind: 'prepare', replica: r(0), view, prepare: prepare42 },
      },
      {
        title: 'backup 1 -> primary 0: prepare_ok op 42',
        notes: ['Sent once op 42 is durable in the backup journal; names the prepare checksum.'],
        message: {
          kind: 'prepare_ok',
          replica: r(1),
          view,
          op: asOp(42),
          checksum: prepare42.header.checksum,
        },
      },
      {
        title: 'primary 0 -> backups: commit 42',
        notes: ['The heartbeat that carries the commit number.'],
        message: { kind: 'commit', replica: r(0), view, commit: asOp(42) },
      },
      {
        title: 'backup 2 -> primary 0: ping',
        notes: ['A liveness probe with the sender monotonic clock (clock synchronisation).'],
        message: { kind: 'ping', replica: r(2), view, pingMonotonicUs: 8_250_000 },
      },
      {
        title: 'primary 0 -> backup 2: pong',
        notes: ['The ping time echoed, and the answering replica wall clock.'],
        message: {
          kind: 'pong',
          replica: r(0),
          view,
          pingMonotonicUs: 8_250_000,
          pongRealtimeUs: timestampUs + 2_000,
        },
      },
    ],
  };
}

function replicaViewChange(): Exchange {
  const next = asView(7);
  const anchor = { anchorOp: asOp(41), anchorChecksum: parent41 };
  const suffix = [
    { op: asOp(42), checksum: prepare42.header.checksum, prepare: prepare42 },
    { op: asOp(43), checksum: prepare43.header.checksum, prepare: null },
  ];
  return {
    file: 'replica_view_change.txt',
    protocol: 'replica',
    about: fileAbout('a view change from view 6 to view 7, whose primary is replica 1'),
    steps: [
      {
        title: 'replica 2 -> all: start_view_change view 7',
        notes: ['Replica 2 stopped hearing from primary 0.'],
        message: { kind: 'start_view_change', replica: r(2), view: next },
      },
      {
        title: 'replica 2 -> replica 1: do_view_change view 7',
        notes: [
          'Its log: the committed prefix up to the anchor op 41, then ops 42 and 43. Op 42',
          'travels whole; op 43 as its checksum only (repaired later from a peer).',
        ],
        message: {
          kind: 'do_view_change',
          replica: r(2),
          view: next,
          logView: view,
          op: asOp(43),
          commitMax: asOp(41),
          ...anchor,
          suffix,
        },
      },
      {
        title: 'replica 1 -> all: start_view view 7',
        notes: ['The new primary log; nonce 0 because it is broadcast, not an answer.'],
        message: {
          kind: 'start_view',
          replica: r(1),
          view: next,
          op: asOp(43),
          commitMax: asOp(42),
          ...anchor,
          suffix,
          nonce: 0,
        },
      },
      {
        title: 'replica 0 (restarted) -> replica 1: request_start_view',
        notes: ['A replica behind the view asks for start_view; the answer echoes the nonce.'],
        message: { kind: 'request_start_view', replica: r(0), view: next, nonce: 5309 },
      },
    ],
  };
}

function replicaRepair(): Exchange {
  const next = asView(7);
  return {
    file: 'replica_repair.txt',
    protocol: 'replica',
    about: fileAbout('repair: one op by checksum, a range, and a refusal'),
    steps: [
      {
        title: 'replica 2 -> replica 1: request_prepare op 43',
        notes: ['"The prepare at op 43 with this checksum" (from the start_view suffix).'],
        message: {
          kind: 'request_prepare',
          replica: r(2),
          view: next,
          op: asOp(43),
          checksum: prepare43.header.checksum,
        },
      },
      {
        title: 'replica 1 -> replica 2: repair_prepare op 43',
        notes: ['Not yet committed: valid for a receiver in the same view.'],
        message: {
          kind: 'repair_prepare',
          replica: r(1),
          view: next,
          prepare: prepare43,
          committed: false,
        },
      },
      {
        title: 'replica 0 -> replica 2: request_prepares ops 40..43',
        notes: ['Bulk repair of a range of ops.'],
        message: {
          kind: 'request_prepares',
          replica: r(0),
          view: next,
          opFirst: asOp(40),
          opLast: asOp(43),
        },
      },
      {
        title: 'replica 2 -> replica 0: nack_prepare op 40',
        notes: ['Replica 2 cannot vouch for op 40: its record is corrupt (no checksum named).'],
        message: {
          kind: 'nack_prepare',
          replica: r(2),
          view: next,
          op: asOp(40),
          checksum: null,
          reason: 'seen_but_corrupt',
        },
      },
    ],
  };
}

/** Every exchange, in file order. */
export function goldenExchanges(): Exchange[] {
  return [
    clientHandshake(),
    clientAppend(),
    clientQuery(),
    clientErrors(),
    replicaNormal(),
    replicaViewChange(),
    replicaRepair(),
  ];
}

/** The message kinds the transcripts must cover between them (the test checks this list). */
export const requiredKinds = {
  client: ['hello', 'hello_ok', 'request', 'reply', 'error', 'query', 'query_result'],
  replica: [
    'replica_hello',
    'prepare',
    'prepare_ok',
    'commit',
    'start_view_change',
    'do_view_change',
    'start_view',
    'request_prepare',
    'repair_prepare',
  ],
} as const;

/**
 * An exchange as a transcript: each message encoded by the real codec, its meaning decoded from
 * those bytes. Throws when the decoded meaning is not the message built here, or when it does
 * not encode back to the same bytes: the generator never writes a transcript the test refuses.
 */
export function transcriptOf(exchange: Exchange): Transcript {
  const messages = exchange.steps.map((step) => {
    const where = `${exchange.file}: "${step.title}"`;
    const bytes = messageToFrame(exchange.protocol, step.message);
    const meaning = frameToMeaning(exchange.protocol, bytes);
    if (!isDeepStrictEqual(meaning, messageMeaning(step.message))) {
      throw new Error(`${where} does not decode to the message built`);
    }
    if (toHex(meaningToFrame(exchange.protocol, meaning)) !== toHex(bytes)) {
      throw new Error(`${where}: its meaning does not encode back to the same bytes`);
    }
    return { title: step.title, notes: step.notes, bytes, meaning };
  });
  return { header: exchange.about, protocol: exchange.protocol, messages };
}

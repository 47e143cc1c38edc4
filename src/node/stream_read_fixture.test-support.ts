// Test support for stream reads (not a test file itself): a real journal in a temporary directory
// holding a given layout of ops (each a batch of registers and appends to a few streams), with
// the kernel state and the stream index those ops produce, exactly as a replica would have them;
// and readPerOp(), the per-op read path the batched one replaced (an index lookup per event, a
// journal read per op, every command of the batch decoded), kept as the reference the batched
// path must match.
//
// Invariants: op 1 creates the tenant (id 1) and streamCount streams (ids 1..streamCount); every
// later op is one layout entry; an event's bytes are a pattern of its op, request and position,
// so a mixed-up event is never equal to the right one.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import { asClientId, asOffset, asRequestNumber, asStreamId, asTenantId } from '../core/types.js';
import type { ClientId, Op, StreamId, TenantId } from '../core/types.js';
import { apply, createState, decodeCommand, encodeCommand } from '../kernel/kernel.js';
import type { Audit, Command, State } from '../kernel/kernel.js';
import type { EventRecord } from '../net/client_protocol.js';
import { realFileIO } from '../storage/file_io.js';
import { Journal } from '../storage/journal.js';
import { RecordingFileIO } from '../storage/recording_file_io.js';
import { makeChain, testCluster } from '../storage/test_support.js';
import { decodeBatch, encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { StreamIndex } from '../views/stream_index.js';

/** One request of a layout op: a register (stream null) or an append of events of these sizes. */
export interface LayoutRequest {
  readonly stream: number | null;
  readonly eventSizes: readonly number[];
}

/** The requests of each op after the first. */
export type Layout = readonly (readonly LayoutRequest[])[];

export const fixtureAudit: Audit = {
  actor: 'reader-test',
  reason: 'stream reads',
  correlationId: null,
};
export const fixtureTenant: TenantId = asTenantId(1);

export interface StreamFixture {
  readonly journal: Journal;
  readonly io: RecordingFileIO;
  readonly state: State;
  readonly index: StreamIndex;
  readonly prepares: readonly Prepare[];
  /** Appends of the last ops whose promises were not awaited (they may not be durable yet). */
  readonly pending: Promise<unknown>;
}

export interface FixtureOptions {
  readonly streamCount: number;
  readonly segmentSizeBytesMax?: number;
  /** Ops at the end whose appends are not awaited before the fixture is returned. */
  readonly unsyncedCount?: number;
}

function clientIdOf(index: number): ClientId {
  return asClientId(index.toString(16).padStart(32, '0'));
}

/** The bytes of event `eventIndex` of request `requestIndex` of op `op`. */
export function eventBytes(op: number, requestIndex: number, eventIndex: number, size: number) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++)
    bytes[i] = (op * 31 + requestIndex * 7 + eventIndex * 3 + i) & 0xff;
  return bytes;
}

function commandsOf(layout: Layout, streamCount: number): Array<Array<Command | null>> {
  const setup: Command[] = [{ kind: 'create_tenant', name: 'readers', audit: fixtureAudit }];
  for (let s = 1; s <= streamCount; s++) {
    setup.push({
      kind: 'create_stream',
      tenantId: fixtureTenant,
      name: `s${s}`,
      dataClass: 'Public',
      audit: fixtureAudit,
    });
  }
  const ops: Array<Array<Command | null>> = [setup];
  layout.forEach((requests, index) => {
    const op = index + 2;
    ops.push(
      requests.map((request, requestIndex) =>
        request.stream === null
          ? null
          : {
              kind: 'append',
              tenantId: fixtureTenant,
              streamId: asStreamId(request.stream),
              expectedOffset: null,
              events: request.eventSizes.map((size, e) => eventBytes(op, requestIndex, e, size)),
              audit: fixtureAudit,
            },
      ),
    );
  });
  return ops;
}

/** Journals the layout in `dir` and derives the state and the stream index from it. */
export async function buildFixture(
  dir: string,
  layout: Layout,
  options: FixtureOptions,
): Promise<StreamFixture> {
  const io = new RecordingFileIO(realFileIO);
  const journal = await Journal.open({
    dir,
    cluster: testCluster,
    io,
    segmentSizeBytesMax: options.segmentSizeBytesMax,
    freeSpace: false,
  });
  const ops = commandsOf(layout, options.streamCount);
  const bodies = ops.map((commands) =>
    encodeBatch(
      commands.map((command, i): Request => ({
        clientId: clientIdOf(i),
        requestNumber: asRequestNumber(1),
        operation: command === null ? 'register' : 'command',
        body: command === null ? new Uint8Array(0) : encodeCommand(command),
      })),
    ),
  );
  const prepares = makeChain(bodies, { requestCounts: ops.map((commands) => commands.length) });
  const state = createState();
  const index = new StreamIndex();
  const unsyncedFrom = prepares.length - (options.unsyncedCount ?? 0);
  const pending: Promise<unknown>[] = [];
  for (const [k, prepare] of prepares.entries()) {
    const appended = journal.append(prepare);
    if (k < unsyncedFrom) await appended;
    else pending.push(appended);
    applyOp(state, index, prepare, ops[k]!);
  }
  return { journal, io, state, index, prepares, pending: Promise.all(pending) };
}

function applyOp(state: State, index: StreamIndex, prepare: Prepare, commands: (Command | null)[]) {
  const { op, timestampUs } = prepare.header;
  commands.forEach((command, requestIndex) => {
    if (command === null) return;
    const meta = { op, timestampUs, clientId: clientIdOf(requestIndex), requestIndex };
    const outcome = apply(state, command, meta);
    assert(outcome.result.status === 'ok', 'a fixture command applies');
    for (const effect of outcome.effects) {
      if (effect.kind !== 'events_appended') continue;
      index.recordAppend(effect.streamId, effect.firstOffset, effect.count, op, requestIndex);
    }
  });
}

/**
 * The per-op read the batched one replaced, as it was: the events [fromOffset, endOffset) of the
 * stream, one index lookup per event and one journal read per op not read yet, stopping before
 * an event that would take the data past readSizeBytesMax (never before the first).
 */
export async function readPerOp(
  index: StreamIndex,
  journal: Journal,
  streamId: StreamId,
  fromOffset: number,
  endOffset: number,
): Promise<EventRecord[]> {
  const decoded = new Map<Op, { prepare: Prepare; commands: (Command | null)[] }>();
  const events: EventRecord[] = [];
  let sizeBytes = 0;
  for (let offset = fromOffset; offset < endOffset; offset++) {
    const location = index.locate(streamId, offset);
    assert(location !== undefined, 'every committed offset is indexed');
    let entry = decoded.get(location.op);
    if (entry === undefined) {
      const prepare = await journal.read(location.op);
      const commands = decodeBatch(prepare.body).map((request) =>
        request.operation === 'command' ? decodeCommand(request.body) : null,
      );
      entry = { prepare, commands };
      decoded.set(location.op, entry);
    }
    const command = entry.commands[location.requestIndex];
    assert(command?.kind === 'append', 'an indexed event belongs to an append');
    const data = command.events[location.eventIndex];
    assert(data !== undefined, 'indexed event exists');
    if (events.length > 0 && sizeBytes + data.length > constants.readSizeBytesMax) break;
    sizeBytes += data.length;
    events.push({ offset: asOffset(offset), timestampUs: entry.prepare.header.timestampUs, data });
  }
  return events;
}

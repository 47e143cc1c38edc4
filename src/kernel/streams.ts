// Streams: creating them, and the pure queries the node uses to read them. A stream belongs to
// one tenant; a query for a stream through another tenant answers as if it did not exist, so
// nothing leaks across tenants.
//
// create_stream checks, in this order (the first failure is the result):
//   audit → invalid_argument; name or data class → invalid_argument;
//   unknown tenant → tenant_not_found; sealed tenant → tenant_sealed;
//   name taken in the tenant → stream_exists;
//   stream count (all tenants) at streamCountMax → limit_exceeded.
// Only then does it mutate the state: the stream gets the next global id (from 1, in commit
// order), offset 0 and its chain genesis (chain.ts).

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { asOffset, asStreamId } from '../core/types.js';
import type { StreamId, TenantId } from '../core/types.js';
import { streamGenesis } from './chain.js';
import { isDataClass } from './command.js';
import type { Command } from './command.js';
import { errorResult, rejected } from './outcome.js';
import type { ApplyOutcome, CommandMeta, ErrorResult } from './outcome.js';
import type { State, Stream, StreamRecord } from './state.js';
import { checkAudit, checkName } from './validate.js';

type CreateStream = Extract<Command, { kind: 'create_stream' }>;

/** The type says it is a DataClass; a command built by hand (not decoded) may still lie. */
function checkDataClass(dataClass: string): ErrorResult | null {
  if (isDataClass(dataClass)) return null;
  return errorResult('invalid_argument', `unknown data class ${JSON.stringify(dataClass)}`);
}

export function applyCreateStream(
  state: State,
  command: CreateStream,
  meta: CommandMeta,
): ApplyOutcome {
  const invalid =
    checkAudit(command.audit) ??
    checkName(command.name, constants.streamNameBytesMax, 'stream name') ??
    checkDataClass(command.dataClass);
  if (invalid !== null) return rejected(invalid);
  const tenant = state.tenants.get(command.tenantId);
  const byName = state.streamIdsByTenant.get(command.tenantId);
  if (tenant === undefined || byName === undefined) {
    return rejected(errorResult('tenant_not_found', `tenant ${command.tenantId} not found`));
  }
  if (tenant.sealed) {
    return rejected(errorResult('tenant_sealed', `tenant ${tenant.id} is sealed`));
  }
  if (byName.has(command.name)) {
    const name = JSON.stringify(command.name);
    return rejected(errorResult('stream_exists', `stream ${name} exists in tenant ${tenant.id}`));
  }
  if (state.streams.size >= state.limits.streamCountMax) {
    const max = state.limits.streamCountMax;
    return rejected(errorResult('limit_exceeded', `stream count is at its maximum of ${max}`));
  }

  const streamId = state.streamIdNext;
  const stream: StreamRecord = {
    id: streamId,
    tenantId: tenant.id,
    name: command.name,
    dataClass: command.dataClass,
    createdAtUs: meta.timestampUs,
    nextOffset: asOffset(0),
    chainHead: streamGenesis(tenant.id, streamId),
  };
  assert(!state.streams.has(streamId), 'stream id must be fresh');
  state.streams.set(streamId, stream);
  byName.set(stream.name, streamId);
  state.streamIdNext = asStreamId(streamId + 1);
  assert(state.streamIdNext === state.streams.size + 1, 'stream ids stay dense');

  const { tenantId, name, dataClass, createdAtUs } = stream;
  return {
    result: {
      status: 'ok',
      kind: 'create_stream',
      streamId,
      tenantId,
      name,
      dataClass,
      createdAtUs,
    },
    effects: [{ kind: 'stream_created', tenantId, streamId, name, dataClass }],
  };
}

/** The tenant's streams in id order; empty when the tenant does not exist. */
export function streamList(state: State, tenantId: TenantId): Stream[] {
  const byName = state.streamIdsByTenant.get(tenantId);
  if (byName === undefined) return [];
  const streams: Stream[] = [];
  for (const streamId of byName.values()) {
    const stream = state.streams.get(streamId);
    assert(stream !== undefined, 'indexed stream exists');
    streams.push(stream);
  }
  return streams;
}

/** The stream, or undefined if it does not exist or belongs to another tenant. */
export function streamById(
  state: State,
  tenantId: TenantId,
  streamId: StreamId,
): Stream | undefined {
  const stream = state.streams.get(streamId);
  if (stream === undefined || stream.tenantId !== tenantId) return undefined;
  return stream;
}

export function streamByName(state: State, tenantId: TenantId, name: string): Stream | undefined {
  const streamId = state.streamIdsByTenant.get(tenantId)?.get(name);
  if (streamId === undefined) return undefined;
  const stream = state.streams.get(streamId);
  assert(
    stream !== undefined && stream.tenantId === tenantId,
    'indexed stream belongs to the tenant',
  );
  return stream;
}

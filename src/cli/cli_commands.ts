// The actions of kimberlite-cli's tenant and stream commands. Each takes a connected client and
// the parsed options, does its work through the SDK, and prints either readable text or, with
// --json, the documented JSON contract (docs/cli.md): snake_case keys, one JSON value per line.

import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import type {
  AppendResult,
  AuditOptions,
  Client,
  DataClass,
  ReadOptions,
  StreamSummary,
  TenantSummary,
} from '../client/client.js';
import { eventJsonLine, eventTextLine, eventsFromDataOption, ndjsonBatches } from './cli_events.js';
import type { CliIo } from './cli_io.js';
import { UsageError, formatTable, write, writeJson } from './cli_io.js';
import { resolveStream, resolveTenant } from './cli_resolve.js';

export interface GlobalOptions {
  readonly cluster: string;
  readonly clusterName: string;
  readonly actor: string | undefined;
  readonly reason: string | undefined;
  readonly correlationId: string | undefined;
  readonly timeoutMs: number;
  readonly json: boolean;
}

export interface CommandContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  readonly db: Client;
}

/** Events per append when reading NDJSON from stdin. */
export const stdinBatchEventCountMax = Math.min(1000, constants.appendEventCountMax);
/** Room left in a request for the command's own fields (ids, audit) beyond event data. */
const requestHeadroomBytes = 8 * 1024;

function audit(globals: GlobalOptions): AuditOptions {
  return {
    ...(globals.reason === undefined ? {} : { reason: globals.reason }),
    ...(globals.correlationId === undefined ? {} : { correlationId: globals.correlationId }),
  };
}

function tenantJson(tenant: TenantSummary): Record<string, unknown> {
  return {
    tenant_id: tenant.tenantId,
    name: tenant.name,
    created_at: tenant.createdAt,
    sealed: tenant.sealed,
  };
}

function streamJson(stream: StreamSummary): Record<string, unknown> {
  return {
    stream_id: stream.streamId,
    tenant_id: stream.tenantId,
    name: stream.name,
    data_class: stream.dataClass,
    created_at: stream.createdAt,
    next_offset: stream.nextOffset,
    chain_head: stream.chainHead,
  };
}

export async function tenantCreate(context: CommandContext, name: string): Promise<void> {
  const { db, io, globals } = context;
  const tenant = await db.createTenant(name, audit(globals));
  if (globals.json) {
    await writeJson(io, {
      tenant_id: tenant.tenantId,
      name: tenant.name,
      created_at: tenant.createdAt,
    });
    return;
  }
  const quoted = JSON.stringify(tenant.name);
  await write(io.stdout, `created tenant ${tenant.tenantId} ${quoted} at ${tenant.createdAt}\n`);
}

export async function tenantList(context: CommandContext): Promise<void> {
  const { db, io, globals } = context;
  const tenants = await db.listTenants();
  if (globals.json) return writeJson(io, tenants.map(tenantJson));
  if (tenants.length === 0) return write(io.stdout, 'no tenants\n');
  const rows = tenants.map((t) => [
    String(t.tenantId),
    t.name,
    t.createdAt,
    t.sealed ? 'yes' : 'no',
  ]);
  await write(io.stdout, formatTable(['ID', 'NAME', 'CREATED', 'SEALED'], rows));
}

export async function streamCreate(
  context: CommandContext,
  options: { tenant: string; name: string; dataClass: DataClass },
): Promise<void> {
  const { db, io, globals } = context;
  const tenant = await resolveTenant(db, options.tenant);
  const stream = await db.createStream(
    { tenantId: tenant.tenantId, name: options.name, dataClass: options.dataClass },
    audit(globals),
  );
  if (globals.json) {
    const { streamId, tenantId, name, dataClass, createdAt } = stream;
    const json = { stream_id: streamId, tenant_id: tenantId, name, data_class: dataClass };
    return writeJson(io, { ...json, created_at: createdAt });
  }
  const what = `${JSON.stringify(stream.name)} (${stream.dataClass}) in tenant ${tenant.tenantId}`;
  await write(io.stdout, `created stream ${stream.streamId} ${what} at ${stream.createdAt}\n`);
}

export async function streamList(context: CommandContext, tenantReference: string): Promise<void> {
  const { db, io, globals } = context;
  const tenant = await resolveTenant(db, tenantReference);
  const streams = await db.listStreams(tenant.tenantId);
  if (globals.json) return writeJson(io, streams.map(streamJson));
  if (streams.length === 0) return write(io.stdout, `no streams in tenant ${tenant.tenantId}\n`);
  const header = ['ID', 'NAME', 'CLASS', 'EVENTS', 'CREATED', 'CHAIN HEAD'];
  const rows = streams.map((s) => [
    String(s.streamId),
    s.name,
    s.dataClass,
    String(s.nextOffset),
    s.createdAt,
    `${s.chainHead.slice(0, 16)}…`,
  ]);
  await write(io.stdout, formatTable(header, rows));
}

interface AppendOptions {
  readonly tenant: string;
  readonly stream: string;
  readonly data: readonly string[];
  readonly expectedOffset: number | undefined;
}

/** Appends the --data values as one append, or stdin's NDJSON in bounded batches. */
export async function streamAppend(context: CommandContext, options: AppendOptions): Promise<void> {
  const { db, io, globals } = context;
  const fromStdin = options.data.includes('-');
  if (fromStdin && options.data.length > 1) {
    throw new UsageError('--data - (stdin) cannot be combined with other --data values');
  }
  const events = fromStdin ? [] : options.data.flatMap(eventsFromDataOption);
  const tenant = await resolveTenant(db, options.tenant);
  const stream = await resolveStream(db, tenant, options.stream);
  const target = { tenantId: tenant.tenantId, streamId: stream.streamId };
  let summary: AppendResult;
  if (fromStdin) {
    summary = await appendStdin(context, target, options.expectedOffset);
  } else {
    const expected = options.expectedOffset;
    const input = {
      ...target,
      events,
      ...(expected === undefined ? {} : { expectedOffset: expected }),
    };
    summary = await db.append(input, audit(globals));
  }
  const { firstOffset, count, chainHead } = summary;
  if (globals.json) {
    return writeJson(io, { first_offset: firstOffset, count, chain_head: chainHead });
  }
  const offsets =
    count === 1 ? `offset ${firstOffset}` : `offsets ${firstOffset}..${firstOffset + count - 1}`;
  const noun = count === 1 ? 'event' : 'events';
  await write(io.stdout, `appended ${count} ${noun} at ${offsets}; chain head ${chainHead}\n`);
}

async function appendStdin(
  context: CommandContext,
  target: { tenantId: number; streamId: number },
  expectedOffset: number | undefined,
): Promise<AppendResult> {
  const limits = {
    eventCountMax: stdinBatchEventCountMax,
    sizeBytesMax: constants.requestBodySizeBytesMax - requestHeadroomBytes,
  };
  let first: AppendResult | null = null;
  let last: AppendResult | null = null;
  let count = 0;
  try {
    for await (const events of ndjsonBatches(context.io.stdin, limits)) {
      const expected =
        expectedOffset === undefined ? {} : { expectedOffset: expectedOffset + count };
      last = await context.db.append({ ...target, events, ...expected }, audit(context.globals));
      first ??= last;
      count += last.count;
    }
  } catch (error) {
    if (count === 0 || !(error instanceof Error)) throw error;
    const done = `${count} events were appended before this (from offset ${first?.firstOffset})`;
    error.message = `${error.message}; ${done}`;
    throw error;
  }
  if (first === null || last === null) {
    throw new UsageError('no events on stdin (expected one JSON value per line)');
  }
  return { firstOffset: first.firstOffset, count, chainHead: last.chainHead };
}

interface ReadCommandOptions {
  readonly tenant: string;
  readonly stream: string;
  readonly from: number;
  readonly limit: number | undefined;
  readonly consistency: 'linearizable' | 'stale';
  readonly lagOpsMax: number | undefined;
}

export async function streamRead(
  context: CommandContext,
  options: ReadCommandOptions,
): Promise<void> {
  const { db, io, globals } = context;
  if (options.lagOpsMax !== undefined && options.consistency !== 'stale') {
    throw new UsageError('--lag-ops-max goes with --consistency stale');
  }
  const tenant = await resolveTenant(db, options.tenant);
  const stream = await resolveStream(db, tenant, options.stream);
  const input = { tenantId: tenant.tenantId, streamId: stream.streamId, from: options.from };
  const freshness: ReadOptions = {
    consistency: options.consistency,
    ...(options.lagOpsMax === undefined ? {} : { lagOpsMax: options.lagOpsMax }),
  };
  const counted = options.limit === undefined ? input : { ...input, count: options.limit };
  const scan = db.events(counted, freshness);
  for await (const event of scan) {
    await write(io.stdout, globals.json ? eventJsonLine(event) : eventTextLine(event));
  }
}

export async function streamVerify(
  context: CommandContext,
  options: { tenant: string; stream: string },
): Promise<void> {
  const { db, io, globals } = context;
  const tenant = await resolveTenant(db, options.tenant);
  const stream = await resolveStream(db, tenant, options.stream);
  const verdict = await db.verifyStream({ tenantId: tenant.tenantId, streamId: stream.streamId });
  if (!verdict.ok) {
    const where = `stream ${stream.streamId} of tenant ${tenant.tenantId}`;
    throw kmbError('storage_corrupt', `${where}: chain does not verify: ${verdict.problem}`);
  }
  if (globals.json) {
    return writeJson(io, {
      ok: true,
      event_count: verdict.eventCount,
      chain_head: verdict.chainHead,
    });
  }
  const what = `stream ${stream.streamId} of tenant ${tenant.tenantId}`;
  const detail = `${verdict.eventCount} events, chain head ${verdict.chainHead}`;
  await write(io.stdout, `${what}: chain verified (${detail})\n`);
}

// The audit export file (`kimberlite-admin audit export --format json`), format
// "kimberlite-ts/audit-export/v1": its types, its schema for reading untrusted files, the
// whole-file digest, the description of a prepare body's requests (what export writes and
// verify recomputes), and ISO-8601 range parsing. docs/audit.md describes every field.
//
// The document lists committed prepares with commit timestamps in [start, end), in op order.
// Each prepare carries its 160-byte header and its body, so a reader can recompute the header
// checksum, the body checksum and the parent link (the prepare hash chain, core/header.ts), and
// decode the body to check every listed command field. Appends list each event's per-stream
// chain link (kernel/chain.ts), anchored by `streams[].link_before` (or the stream's genesis).
// `digest` is SHA-256 over the document without `digest` as canonical JSON (JSON.stringify's
// encoding of every value, object keys sorted by UTF-16 code unit, no whitespace), so any change
// to a value is caught even where no checksum covers it.
//
// Invariants: describeRequest is a pure function of the request bytes, shared by export and
// verify; every field it returns is checked by verify. Only outcomes are not derived from the
// bytes (they are the kernel's result on replay) and are covered by the digest alone.

import { z } from 'zod';
import { DecodeError } from '../core/binary.js';
import { sha256, toHex } from '../core/checksum.js';
import { decodeCommand } from '../kernel/kernel.js';
import type { Request } from '../vsr/batch.js';

export const auditFormat = 'kimberlite-ts/audit-export/v1';

const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
const u53 = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const eventSchema = z.strictObject({ offset: u53, sha256: hex32, link: hex32 });

const outcomeSchema = z.strictObject({
  status: z.enum(['ok', 'error', 'skipped']),
  code: z.string().nullable(),
  message: z.string().nullable(),
  tenant_id: u53.nullable(),
  stream_id: u53.nullable(),
  first_offset: u53.nullable(),
  chain_head: hex32.nullable(),
});

const commandSchema = z.strictObject({
  index: u53,
  client_id: z.string(),
  request_number: u53,
  operation: z.enum(['register', 'command']),
  kind: z.enum(['create_tenant', 'create_stream', 'append']).nullable(),
  tenant_id: u53.nullable(),
  stream_id: u53.nullable(),
  name: z.string().nullable(),
  data_class: z.string().nullable(),
  actor: z.string().nullable(),
  reason: z.string().nullable(),
  correlation_id: z.string().nullable(),
  event_count: u53,
  outcome: outcomeSchema,
  events: z.array(eventSchema),
});

const prepareSchema = z.strictObject({
  op: u53,
  timestamp: z.string(),
  timestamp_us: u53,
  view: u53,
  primary: u53,
  checksum: hex32,
  parent: hex32,
  header: z.string().regex(/^[0-9a-f]{320}$/),
  body: z.string(),
  commands: z.array(commandSchema),
});

export const auditExportSchema = z.strictObject({
  format: z.literal(auditFormat),
  created_at: z.string(),
  cluster_id: u53,
  source: z.strictObject({
    data_dir: z.string(),
    replica: u53.nullable(),
    committed_through_op: u53,
    journal_op_max: u53,
  }),
  range: z.strictObject({ start: z.string(), end: z.string(), start_us: u53, end_us: u53 }),
  chain: z.strictObject({
    anchor_op: u53,
    anchor_checksum: hex32,
    head_op: u53,
    head_checksum: hex32,
  }),
  streams: z.array(
    z.strictObject({ tenant_id: u53, stream_id: u53, offset_before: u53, link_before: hex32 }),
  ),
  prepares: z.array(prepareSchema),
  summary: z.strictObject({ prepare_count: u53, command_count: u53, event_count: u53 }),
  digest: hex32,
});

export type AuditExport = z.infer<typeof auditExportSchema>;
export type AuditPrepare = AuditExport['prepares'][number];
export type AuditCommand = AuditPrepare['commands'][number];
export type AuditOutcome = AuditCommand['outcome'];
export type AuditStreamAnchor = AuditExport['streams'][number];

/** The fields of a command that come from its bytes, in the order the file lists them. */
export type DescribedCommand = Omit<AuditCommand, 'outcome' | 'events'> & {
  /** The SHA-256 of each event's data (hex), in order. */
  readonly eventHashes: readonly string[];
};

/** Describes one request of a prepare body; an undecodable command has kind null. */
export function describeRequest(request: Request, index: number): DescribedCommand {
  const base = {
    index,
    client_id: request.clientId,
    request_number: request.requestNumber,
    operation: request.operation,
    kind: null,
    tenant_id: null,
    stream_id: null,
    name: null,
    data_class: null,
    actor: null,
    reason: null,
    correlation_id: null,
    event_count: 0,
    eventHashes: [],
  };
  if (request.operation === 'register') return base;
  let command;
  try {
    command = decodeCommand(request.body);
  } catch (error) {
    if (error instanceof DecodeError) return base;
    throw error;
  }
  const audit = {
    kind: command.kind,
    actor: command.audit.actor,
    reason: command.audit.reason,
    correlation_id: command.audit.correlationId,
  };
  if (command.kind === 'create_tenant') return { ...base, ...audit, name: command.name };
  if (command.kind === 'create_stream') {
    const { tenantId, name, dataClass } = command;
    return { ...base, ...audit, tenant_id: tenantId, name, data_class: dataClass };
  }
  return {
    ...base,
    ...audit,
    tenant_id: command.tenantId,
    stream_id: command.streamId,
    event_count: command.events.length,
    eventHashes: command.events.map((data) => toHex(sha256(data))),
  };
}

/** JSON with every object's keys in sorted order, so the digest does not depend on key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const members = entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`);
  return `{${members.join(',')}}`;
}

/** The digest of a document: SHA-256 of its canonical JSON without the `digest` key. */
export function auditDigest(document: object): string {
  const { digest: _digest, ...content } = document as Record<string, unknown>;
  return toHex(sha256(new TextEncoder().encode(canonicalJson(content))));
}

// date [T time [.fraction] [offset]]: 2024-01-31, 2024-01-31T10:00, 2024-01-31 10:00:00.5+02:00
const isoDate = String.raw`(\d{4})-(\d{2})-(\d{2})`;
const isoTime = String.raw`(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?`;
const isoPattern = new RegExp(`^${isoDate}(?:[T ]${isoTime})?$`);

/**
 * Microseconds since the epoch for an ISO-8601 date or date-time. A time without an offset is
 * UTC. A bare date is that day's midnight UTC, or with `endOfDay` the next midnight, so
 * `--end 2024-12-31` includes the whole of 31 December. Returns null when malformed.
 */
export function parseAuditTime(text: string, endOfDay: boolean): number | null {
  const match = isoPattern.exec(text.trim());
  if (match === null) return null;
  const [, y, mo, d, h, mi, s, fraction, zone] = match;
  const parts = [y, mo, d, h ?? '0', mi ?? '0', s ?? '0'].map(Number);
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = parts;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  const valid =
    check.getUTCFullYear() === year &&
    check.getUTCMonth() === month - 1 &&
    check.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60;
  if (!valid) return null;
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z') {
    const digits = zone.replace(':', '');
    const sign = digits.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  const micros = Number((fraction ?? '').padEnd(6, '0'));
  const dayUs = endOfDay && h === undefined ? 86_400_000_000 : 0;
  const us = (ms - offsetMinutes * 60_000) * 1000 + micros + dayUs;
  return us >= 0 && Number.isSafeInteger(us) ? us : null;
}

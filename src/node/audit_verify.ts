// Offline verification of an audit export (`kimberlite-admin audit verify FILE`): needs the file
// alone, no data directory and no cluster. Pure: it takes the file's text and returns a report.
//
// It recomputes, in file order:
//   - per prepare: the header checksum over the 160 header bytes; that the header's op, view,
//     primary, timestamp and cluster are the listed ones; the body checksum; the parent link to
//     the previous prepare (the first to `chain.anchor_checksum`, which for anchor op 0 must be
//     the cluster's root prepare); ops contiguous, timestamps increasing and inside the range;
//   - per command: every listed field against the decoded body (client id, request number,
//     kind, tenant, stream, name, data class, actor, reason, correlation id, event count and
//     each event's SHA-256);
//   - per append: each event's stream chain link from the previous link (the stream's anchor in
//     `streams`, or its genesis when the stream was created in the export), offsets contiguous,
//     and the outcome's chain head equal to the last link;
//   - the chain head, the summary counts, and last the whole-file digest.
// Problems are listed in that order, so the first names the first bad entry. At most
// auditVerifyProblemCountMax are kept; the rest are counted.

import { checksumEqual, fromHex, toHex } from '../core/checksum.js';
import { DecodeError } from '../core/binary.js';
import { bodyMatches, decodeHeader, rootPrepare } from '../core/header.js';
import type { PrepareHeader } from '../core/header.js';
import {
  asOffset,
  asStreamId,
  asTenantId,
  asTimestampUs,
  formatTimestampUs,
} from '../core/types.js';
import { decodeCommand, eventLink, streamGenesis } from '../kernel/kernel.js';
import { decodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { auditDigest, auditExportSchema, describeRequest } from './audit_format.js';
import type { AuditCommand, AuditExport, AuditPrepare } from './audit_format.js';

export const auditVerifyProblemCountMax = 100;

export interface AuditVerifyProblem {
  /** Where: `file`, `chain`, `streams[i]`, `prepares[i] (op N)`, `… command j`. */
  readonly entry: string;
  readonly problem: string;
}

export interface AuditVerifyReport {
  readonly ok: boolean;
  readonly prepareCount: number;
  readonly commandCount: number;
  readonly eventCount: number;
  readonly opFirst: number | null;
  readonly opLast: number | null;
  /** The last prepare's checksum (the anchor's when empty); '' when unreadable. */
  readonly headChecksum: string;
  readonly problems: readonly AuditVerifyProblem[];
  readonly problemCount: number;
}

interface StreamLink {
  nextOffset: number;
  link: Uint8Array;
}

class Checker {
  readonly problems: AuditVerifyProblem[] = [];
  problemCount = 0;
  readonly streams = new Map<number, StreamLink>();

  problem(entry: string, problem: string): void {
    this.problemCount += 1;
    if (this.problems.length < auditVerifyProblemCountMax) this.problems.push({ entry, problem });
  }

  expect(entry: string, what: string, actual: unknown, expected: unknown): boolean {
    if (actual === expected) return true;
    this.problem(
      entry,
      `${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
    );
    return false;
  }
}

function strictBase64(text: string): Uint8Array | null {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

function checkHeader(c: Checker, at: string, prepare: AuditPrepare, doc: AuditExport) {
  const decoded = decodeHeader(fromHex(prepare.header));
  if (!decoded.ok) {
    c.problem(at, `header does not verify (${decoded.problem})`);
    return null;
  }
  const h = decoded.header;
  c.expect(at, 'checksum', prepare.checksum, toHex(h.checksum));
  c.expect(at, 'parent', prepare.parent, toHex(h.parent));
  c.expect(at, 'op', prepare.op, h.op);
  c.expect(at, 'view', prepare.view, h.view);
  c.expect(at, 'primary', prepare.primary, h.replica);
  c.expect(at, 'timestamp_us', prepare.timestamp_us, h.timestampUs);
  c.expect(at, 'timestamp', prepare.timestamp, formatTimestampUs(h.timestampUs));
  c.expect(at, "header's cluster", h.cluster, doc.cluster_id);
  return h;
}

function checkBody(c: Checker, at: string, prepare: AuditPrepare, header: PrepareHeader) {
  const body = strictBase64(prepare.body);
  if (body === null) {
    c.problem(at, 'body is not canonical base64');
    return null;
  }
  if (!bodyMatches(header, body)) {
    c.problem(at, 'body does not match the header body checksum');
    return null;
  }
  try {
    const requests = decodeBatch(body);
    c.expect(at, 'request count', requests.length, header.requestCount);
    return requests;
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    c.problem(at, `body does not decode as a batch: ${error.message}`);
    return null;
  }
}

const describedKeys = [
  'index',
  'client_id',
  'request_number',
  'operation',
  'kind',
  'tenant_id',
  'stream_id',
  'name',
  'data_class',
  'actor',
  'reason',
  'correlation_id',
  'event_count',
] as const;

function checkCommand(
  c: Checker,
  at: string,
  listed: AuditCommand,
  request: Request,
  index: number,
) {
  const described = describeRequest(request, index);
  for (const key of describedKeys) c.expect(at, key, listed[key], described[key]);
  const appended = listed.outcome.status === 'ok' && listed.kind === 'append';
  const eventCount = appended ? described.event_count : 0;
  if (!c.expect(at, 'events listed', listed.events.length, eventCount)) return;
  listed.events.forEach((event, i) => {
    c.expect(`${at} event ${i}`, 'sha256', event.sha256, described.eventHashes[i]);
  });
}

function checkLinks(
  c: Checker,
  at: string,
  listed: AuditCommand,
  request: Request,
  timestampUs: number,
) {
  const { outcome } = listed;
  if (outcome.status !== 'ok') return;
  if (listed.kind === 'create_stream' && outcome.stream_id !== null && outcome.tenant_id !== null) {
    const genesis = streamGenesis(asTenantId(outcome.tenant_id), asStreamId(outcome.stream_id));
    if (c.streams.has(outcome.stream_id)) c.problem(at, 'stream created twice');
    c.streams.set(outcome.stream_id, { nextOffset: 0, link: genesis });
    return;
  }
  if (listed.kind !== 'append' || listed.stream_id === null) return;
  const stream = c.streams.get(listed.stream_id);
  if (stream === undefined) {
    c.problem(at, `stream ${listed.stream_id} has no anchor in streams[] and was not created`);
    return;
  }
  c.expect(at, 'outcome first_offset', outcome.first_offset, stream.nextOffset);
  let command;
  try {
    command = decodeCommand(request.body);
  } catch {
    return; // checkCommand has reported the mismatch with the listed kind
  }
  if (command.kind !== 'append') return;
  command.events.forEach((data, i) => {
    const event = listed.events[i];
    const offset = asOffset(stream.nextOffset);
    stream.link = eventLink(stream.link, offset, asTimestampUs(timestampUs), data);
    stream.nextOffset += 1;
    if (event === undefined) return;
    c.expect(`${at} event ${i}`, 'offset', event.offset, offset);
    c.expect(`${at} event ${i}`, 'link', event.link, toHex(stream.link));
  });
  c.expect(at, 'outcome chain_head', outcome.chain_head, toHex(stream.link));
}

function checkAnchors(c: Checker, doc: AuditExport): void {
  doc.streams.forEach((anchor, i) => {
    const at = `streams[${i}]`;
    if (c.streams.has(anchor.stream_id)) c.problem(at, `stream ${anchor.stream_id} listed twice`);
    const link = fromHex(anchor.link_before);
    if (anchor.offset_before === 0) {
      const genesis = streamGenesis(asTenantId(anchor.tenant_id), asStreamId(anchor.stream_id));
      if (!checksumEqual(link, genesis)) c.problem(at, 'an empty stream must anchor at genesis');
    }
    c.streams.set(anchor.stream_id, { nextOffset: anchor.offset_before, link });
  });
}

function checkPrepares(c: Checker, doc: AuditExport): void {
  const { chain, range } = doc;
  if (chain.anchor_op === 0) {
    const root = toHex(rootPrepare(doc.cluster_id).header.checksum);
    c.expect('chain', 'anchor_checksum of op 0', chain.anchor_checksum, root);
  }
  let parent = chain.anchor_checksum;
  let timestampUsLast = -1;
  doc.prepares.forEach((prepare, i) => {
    const at = `prepares[${i}] (op ${prepare.op})`;
    c.expect(at, 'op', prepare.op, chain.anchor_op + 1 + i);
    c.expect(at, 'parent', prepare.parent, parent);
    parent = prepare.checksum;
    const inRange = prepare.timestamp_us >= range.start_us && prepare.timestamp_us < range.end_us;
    if (!inRange) c.problem(at, `timestamp ${prepare.timestamp} is outside the range`);
    if (prepare.timestamp_us <= timestampUsLast) c.problem(at, 'timestamp does not increase');
    timestampUsLast = prepare.timestamp_us;
    const header = checkHeader(c, at, prepare, doc);
    const requests = header === null ? null : checkBody(c, at, prepare, header);
    if (requests === null) return;
    if (!c.expect(at, 'commands listed', prepare.commands.length, requests.length)) return;
    prepare.commands.forEach((listed, j) => {
      const request = requests[j];
      if (request === undefined) return;
      checkCommand(c, `${at} command ${j}`, listed, request, j);
      checkLinks(c, `${at} command ${j}`, listed, request, prepare.timestamp_us);
    });
  });
  const last = doc.prepares[doc.prepares.length - 1];
  c.expect('chain', 'head_op', chain.head_op, last?.op ?? chain.anchor_op);
  c.expect('chain', 'head_checksum', chain.head_checksum, last?.checksum ?? chain.anchor_checksum);
}

function checkSummary(c: Checker, doc: AuditExport): void {
  const commands = doc.prepares.flatMap((p) => p.commands);
  const events = commands.reduce((sum, command) => sum + command.events.length, 0);
  c.expect('summary', 'prepare_count', doc.summary.prepare_count, doc.prepares.length);
  c.expect('summary', 'command_count', doc.summary.command_count, commands.length);
  c.expect('summary', 'event_count', doc.summary.event_count, events);
  c.expect('file', 'digest', doc.digest, auditDigest(doc));
}

function parse(c: Checker, text: string): AuditExport | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    c.problem('file', `not JSON: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
  const parsed = auditExportSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues.slice(0, 10)) {
    c.problem(`file at ${issue.path.join('.') || '(top)'}`, issue.message);
  }
  return null;
}

/** Verifies the text of an export file; see the top of this file for what is checked. */
export function verifyAuditExport(text: string): AuditVerifyReport {
  const c = new Checker();
  const doc = parse(c, text);
  if (doc !== null) {
    checkAnchors(c, doc);
    checkPrepares(c, doc);
    checkSummary(c, doc);
  }
  const prepares = doc?.prepares ?? [];
  const commands = prepares.flatMap((p) => p.commands);
  return {
    ok: c.problemCount === 0,
    prepareCount: prepares.length,
    commandCount: commands.length,
    eventCount: commands.reduce((sum, command) => sum + command.events.length, 0),
    opFirst: prepares[0]?.op ?? null,
    opLast: prepares[prepares.length - 1]?.op ?? null,
    headChecksum: doc?.chain.head_checksum ?? '',
    problems: c.problems,
    problemCount: c.problemCount,
  };
}

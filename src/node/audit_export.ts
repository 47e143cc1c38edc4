// Builds an audit export (audit_format.ts) from a replica's data directory, offline and strictly
// read-only: the storage verify runs first and the export is refused when it finds a problem
// (an export must not certify a damaged log). The journal is then replayed from op 1 through
// the kernel by the replica's own executor (vsr/executor.ts), with the client table bound the
// superblock recorded, so sessions are evicted as the replica evicted them; each command's
// outcome and each stream's chain link before the range are known; prepares whose commit
// timestamp falls in [start, end) are written out.
//
// Committed means op <= max(superblock commit, the largest `commit` any journalled prepare
// header carries): a primary only names ops in `commit` once a quorum has them, so everything
// up to that number is committed even when the superblock (written at stop and view change) is
// behind. Later ops in the journal are left out and counted in `source`.
//
// Bounds: bodies written are limited to auditExportBodyBytesMax in total (the document is built
// in memory); a larger range is refused with KMB_ERR_LIMIT_EXCEEDED, asking for a narrower one.

import { checksumEqual, sha256, toHex } from '../core/checksum.js';
import { DecodeError } from '../core/binary.js';
import { kmbError } from '../core/errors.js';
import { rootPrepare } from '../core/header.js';
import { asOffset, formatTimestampUs } from '../core/types.js';
import type { StreamId } from '../core/types.js';
import { apply, createState, decodeCommand, eventLink } from '../kernel/kernel.js';
import type { Command, CommandResult, State } from '../kernel/kernel.js';
import { realFileIO } from '../storage/file_io.js';
import type { FileIO } from '../storage/file_io.js';
import { newChain, scanSegment } from '../storage/journal_scan.js';
import type { ScannedRecord } from '../storage/journal_scan.js';
import { journalDirOf, listSegmentIndexes, segmentPath } from '../storage/segment_file.js';
import { sessionBoundOf } from '../storage/superblock_copy.js';
import { verifyDataDir } from '../storage/verify.js';
import { decodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { ClientTable } from '../vsr/client_table.js';
import { executeRequest } from '../vsr/executor.js';
import type { StateMachine } from '../vsr/replica.js';
import { auditDigest, auditFormat, describeRequest } from './audit_format.js';
import type { AuditCommand, AuditExport, AuditOutcome, AuditPrepare } from './audit_format.js';
import type { AuditStreamAnchor } from './audit_format.js';

/** The export answers no client: the reply bytes its client table caches are left empty. */
const replyResultUnkept = new Uint8Array(0);

type ApplyMeta = Parameters<StateMachine<null>['apply']>[1];

/** Total body bytes one export may hold. */
export const auditExportBodyBytesMax = 256 * 1024 * 1024;

export interface AuditExportOptions {
  readonly dataDir: string;
  /** Microseconds since the epoch; the range is [startUs, endUs). */
  readonly startUs: number;
  readonly endUs: number;
  /** Wall clock for `created_at` (default Date.now). */
  readonly nowMs?: () => number;
  readonly io?: FileIO;
}

const noOutcome: AuditOutcome = {
  status: 'skipped',
  code: null,
  message: null,
  tenant_id: null,
  stream_id: null,
  first_offset: null,
  chain_head: null,
};

function outcomeOf(result: CommandResult): AuditOutcome {
  if (result.status === 'error') {
    return { ...noOutcome, status: 'error', code: result.code, message: result.message };
  }
  const ok = { ...noOutcome, status: 'ok' as const };
  if (result.kind === 'create_tenant') return { ...ok, tenant_id: result.tenantId };
  if (result.kind === 'create_stream') {
    return { ...ok, tenant_id: result.tenantId, stream_id: result.streamId };
  }
  return { ...ok, first_offset: result.firstOffset, chain_head: toHex(result.chainHead) };
}

/** Replays records in op order and keeps the prepares inside the range. */
class AuditCollector {
  readonly state: State = createState();
  readonly prepares: AuditPrepare[] = [];
  readonly anchors = new Map<StreamId, AuditStreamAnchor>();
  /** Checksum of the last prepare before the first kept one (root prepare's at first). */
  anchorChecksum: Uint8Array;
  anchorOp = 0;
  bodyBytes = 0;
  /** The replica's client table, with the bound the superblock recorded. */
  private readonly table: ClientTable;

  constructor(
    source: { cluster: number; clientSessionCountMax: number },
    private readonly range: { startUs: number; endUs: number; committedOp: number },
  ) {
    this.anchorChecksum = rootPrepare(source.cluster).header.checksum;
    this.table = new ClientTable(sessionBoundOf(source));
  }

  onRecord(record: ScannedRecord): void {
    const { op, timestampUs } = record.header;
    if (op > this.range.committedOp) return;
    const inRange = timestampUs >= this.range.startUs && timestampUs < this.range.endUs;
    let requests: Request[] = [];
    try {
      requests = decodeBatch(record.body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
    }
    const commands = requests.map((request, index) => this.apply(record, request, index, inRange));
    if (!inRange) {
      if (timestampUs < this.range.startUs) {
        this.anchorChecksum = record.header.checksum;
        this.anchorOp = op;
      }
      return;
    }
    this.keep(record, commands);
  }

  private keep(record: ScannedRecord, commands: AuditCommand[]): void {
    this.bodyBytes += record.body.length;
    if (this.bodyBytes > auditExportBodyBytesMax) {
      throw kmbError(
        'limit_exceeded',
        `the range holds more than ${auditExportBodyBytesMax} bytes of prepare bodies; ` +
          'export a narrower --start/--end range',
      );
    }
    const { header } = record;
    this.prepares.push({
      op: header.op,
      timestamp: formatTimestampUs(header.timestampUs),
      timestamp_us: header.timestampUs,
      view: header.view,
      primary: header.replica,
      checksum: toHex(header.checksum),
      parent: toHex(header.parent),
      header: toHex(record.headerBytes),
      body: Buffer.from(record.body).toString('base64'),
      commands,
    });
  }

  private apply(record: ScannedRecord, request: Request, index: number, inRange: boolean) {
    const described = describeRequest(request, index);
    const { eventHashes, ...fields } = described;
    const entry: AuditCommand = { ...fields, outcome: noOutcome, events: [] };
    let applied = entry;
    const machine: StateMachine<null> = {
      apply: (body, meta) => {
        applied = this.applyCommand({ entry, eventHashes, inRange }, body, meta);
        return { result: replyResultUnkept, output: null };
      },
    };
    const { op, timestampUs } = record.header;
    const outcome = executeRequest(
      this.table,
      machine,
      { op, timestampUs, requestIndex: index },
      request,
    );
    if (request.operation === 'register') {
      return { ...entry, outcome: { ...noOutcome, status: 'ok' as const } };
    }
    return outcome.kind === 'applied' ? applied : entry;
  }

  /** The state machine of the export: the kernel, recording each outcome and event link. */
  private applyCommand(
    described: { entry: AuditCommand; eventHashes: readonly string[]; inRange: boolean },
    body: Uint8Array,
    meta: ApplyMeta,
  ): AuditCommand {
    const { entry, eventHashes, inRange } = described;
    let command: Command;
    try {
      command = decodeCommand(body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      const message = `command does not decode: ${error.message}`;
      const outcome = { ...noOutcome, status: 'error' as const, message };
      return { ...entry, outcome: { ...outcome, code: 'KMB_ERR_INVALID_ARGUMENT' } };
    }
    // The live record changes in place on apply: copy what the chain needs first.
    const live = command.kind === 'append' ? this.state.streams.get(command.streamId) : undefined;
    const before = live === undefined ? null : { ...live };
    const { op, timestampUs } = meta;
    const { result } = apply(this.state, command, meta);
    const outcome = outcomeOf(result);
    if (!inRange || command.kind !== 'append' || result.status !== 'ok')
      return { ...entry, outcome };
    if (result.kind !== 'append' || before === null) {
      return { ...entry, outcome };
    }
    if (!this.anchors.has(before.id) && before.createdAtUs < this.range.startUs) {
      this.anchors.set(before.id, {
        tenant_id: before.tenantId,
        stream_id: before.id,
        offset_before: before.nextOffset,
        link_before: toHex(before.chainHead),
      });
    }
    let link = before.chainHead;
    const events = command.events.map((data, i) => {
      const offset = asOffset(result.firstOffset + i);
      link = eventLink(link, offset, timestampUs, data);
      return { offset, sha256: eventHashes[i] ?? toHex(sha256(data)), link: toHex(link) };
    });
    if (!checksumEqual(link, result.chainHead)) {
      throw kmbError('storage_corrupt', `op ${op}: a stream chain does not recompute on replay`);
    }
    return { ...entry, outcome, events };
  }
}

async function forEachRecord(
  dataDir: string,
  cluster: number,
  io: FileIO,
  onRecord: (record: ScannedRecord) => void,
): Promise<void> {
  const journalDir = journalDirOf(dataDir);
  if ((await io.stat(journalDir)) === null) return;
  const indexes = await listSegmentIndexes(io, journalDir);
  const chain = newChain(cluster);
  for (const [position, index] of indexes.entries()) {
    const handle = await io.open(segmentPath(journalDir, index), 'read');
    try {
      await scanSegment({
        handle,
        fileSizeBytes: await handle.size(),
        segmentIndex: index,
        isLast: position === indexes.length - 1,
        chain,
        continueAfterProblem: false,
        onRecord,
        onProblem: (problem) => {
          throw kmbError('storage_corrupt', `journal: ${problem.problem}`);
        },
      });
    } finally {
      await handle.close();
    }
  }
}

/** The export document of a data directory for [startUs, endUs). */
export async function exportAudit(options: AuditExportOptions): Promise<AuditExport> {
  const io = options.io ?? realFileIO;
  const storage = await verifyDataDir(options.dataDir, io);
  const first = storage.problems[0];
  if (!storage.ok || storage.superblock.state === null) {
    const why = first === undefined ? 'it has no valid superblock' : first.problem;
    throw kmbError(
      'storage_corrupt',
      `${options.dataDir} does not verify (${why}); run kimberlite-admin verify for the report`,
    );
  }
  const superblock = storage.superblock.state;
  let headerCommitMax = 0;
  await forEachRecord(options.dataDir, superblock.cluster, io, (record) => {
    headerCommitMax = Math.max(headerCommitMax, record.header.commit);
  });
  const committedOp = Math.min(storage.opMax, Math.max(superblock.commit, headerCommitMax));
  const range = { startUs: options.startUs, endUs: options.endUs, committedOp };
  const collector = new AuditCollector(superblock, range);
  await forEachRecord(options.dataDir, superblock.cluster, io, (r) => collector.onRecord(r));
  return finish(options, collector, {
    cluster: superblock.cluster,
    replica: superblock.replica,
    committedOp,
    journalOpMax: storage.opMax,
  });
}

function finish(
  options: AuditExportOptions,
  collector: AuditCollector,
  source: { cluster: number; replica: number; committedOp: number; journalOpMax: number },
): AuditExport {
  const { prepares } = collector;
  const last = prepares[prepares.length - 1];
  const commands = prepares.flatMap((p) => p.commands);
  const document: Omit<AuditExport, 'digest'> = {
    format: auditFormat,
    created_at: new Date((options.nowMs ?? Date.now)()).toISOString(),
    cluster_id: source.cluster,
    source: {
      data_dir: options.dataDir,
      replica: source.replica,
      committed_through_op: source.committedOp,
      journal_op_max: source.journalOpMax,
    },
    range: {
      start: formatTimestampUs(options.startUs),
      end: formatTimestampUs(options.endUs),
      start_us: options.startUs,
      end_us: options.endUs,
    },
    chain: {
      anchor_op: collector.anchorOp,
      anchor_checksum: toHex(collector.anchorChecksum),
      head_op: last?.op ?? collector.anchorOp,
      head_checksum: last?.checksum ?? toHex(collector.anchorChecksum),
    },
    streams: [...collector.anchors.values()],
    prepares,
    summary: {
      prepare_count: prepares.length,
      command_count: commands.length,
      event_count: commands.reduce((sum, c) => sum + c.events.length, 0),
    },
  };
  return { ...document, digest: auditDigest(document) };
}

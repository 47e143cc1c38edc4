// The kernel replay of `kimberlite-admin verify`: after the storage layer has checked the bytes
// (checksums, the prepare hash chain, superblock), this reads every valid record again, strictly
// read-only, and replays the log the way a replica does at start-up: each prepare body must
// decode as a batch of requests, each command must decode, and commands are applied in op order
// with the kernel through the replica's own executor (vsr/executor.ts, one batch at a time by
// executeBatch of node/committed_replay.ts, as the views' replay does): the same session rules
// (a command applies only when its client registered and its request number is the next one)
// and the same eviction, with the client table bound the superblock recorded at format time.
//
// On top of the kernel it keeps its own account of every stream: the offsets of each append
// must continue where the stream ended, and every event's chain link is recomputed from the
// previous link, the event's offset, the prepare's timestamp and the event's bytes; the result
// the kernel returns and the state it ends in must match. Prepare timestamps must strictly
// increase. Replay applies only while ops are contiguous; after a gap (corruption the storage
// check reports) it keeps decoding, to find every undecodable body, but applies nothing more.
//
// Records are found with the same scanner as start-up and the storage verify (journal_scan.ts),
// over files opened for reading only: nothing is truncated, even a torn tail.

import { AssertionError } from '../core/assert.js';
import { DecodeError } from '../core/binary.js';
import { checksumEqual, toHex } from '../core/checksum.js';
import { asOffset } from '../core/types.js';
import type { Op, StreamId, TimestampUs } from '../core/types.js';
import { apply, createState, decodeCommand, eventLink, stateDigest } from '../kernel/kernel.js';
import { streamGenesis } from '../kernel/kernel.js';
import type { Command, CommandResult, State } from '../kernel/kernel.js';
import { realFileIO } from '../storage/file_io.js';
import type { FileIO } from '../storage/file_io.js';
import { newChain, scanSegment } from '../storage/journal_scan.js';
import type { ChainState, ScannedRecord } from '../storage/journal_scan.js';
import { journalDirOf, listSegmentIndexes, segmentPath } from '../storage/segment_file.js';
import { segmentFileName } from '../storage/segment_header.js';
import { executeBatch } from '../node/committed_replay.js';
import { readSuperblock } from '../storage/superblock.js';
import { clientSessionCountMaxDefault, sessionBoundOf } from '../storage/superblock_copy.js';
import { decodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { ClientTable } from '../vsr/client_table.js';
import type { RequestOutcome } from '../vsr/executor.js';
import type { StateMachine } from '../vsr/replica.js';

/** Replay answers no client: the reply bytes its client table caches are left empty. */
const replyResultUnkept = new Uint8Array(0);

type ApplyMeta = Parameters<StateMachine<null>['apply']>[1];

/** Problems kept in a replay report; more are only counted. */
export const replayProblemCountMax = 1000;
/** Warnings kept in a replay report; more are only counted. */
export const replayWarningCountMax = 100;

export interface ReplayProblem {
  readonly segment: string;
  readonly position: number;
  readonly op: number | null;
  readonly problem: string;
}

export interface ReplayReport {
  readonly ok: boolean;
  /** Valid records read from the journal. */
  readonly recordCount: number;
  /** The last op applied (0 when none). */
  readonly opApplied: number;
  /** Replay applied every record; false when it stopped at a gap or an undecodable body. */
  readonly complete: boolean;
  /** The client table bound replay evicted with (the superblock's). */
  readonly clientSessionCountMax: number;
  readonly registerCount: number;
  /** Commands applied by the kernel (rejected ones included). */
  readonly commandCount: number;
  /** Applied commands the kernel rejected (their error result is the committed outcome). */
  readonly rejectedCount: number;
  /** Commands a replica skips (no session, or out of order): a correct primary writes none. */
  readonly skippedCount: number;
  readonly tenantCount: number;
  readonly streamCount: number;
  readonly eventCount: number;
  /** stateDigest() of the kernel state after opApplied, hex: equal on every healthy replica. */
  readonly stateDigest: string;
  readonly problems: readonly ReplayProblem[];
  readonly problemsOmittedCount: number;
  readonly warnings: readonly string[];
  readonly warningsOmittedCount: number;
}

interface StreamChain {
  nextOffset: number;
  link: Uint8Array;
}

interface Site {
  readonly segment: string;
  readonly position: number;
  readonly op: Op;
}

type OkResult = Exclude<CommandResult, { status: 'error' }>;

function labelOf(request: Request, index: number): string {
  return `request ${index} (client ${request.clientId}, number ${request.requestNumber})`;
}

class Replayer {
  readonly state: State = createState();
  readonly problems: ReplayProblem[] = [];
  readonly warnings: string[] = [];
  problemCount = 0;
  warningCount = 0;
  recordCount = 0;
  opApplied = 0;
  registerCount = 0;
  commandCount = 0;
  rejectedCount = 0;
  skippedCount = 0;
  stopped = false;
  private timestampUsLast = -1;

  constructor(readonly clientSessionCountMax: number) {
    this.table = new ClientTable(clientSessionCountMax);
  }
  private readonly table: ClientTable;
  private readonly chains = new Map<StreamId, StreamChain>();

  problem(site: Site | null, problem: string): void {
    this.problemCount += 1;
    if (this.problems.length >= replayProblemCountMax) return;
    const where = site ?? { segment: '', position: 0, op: null };
    this.problems.push({ ...where, problem });
  }

  warning(text: string): void {
    this.warningCount += 1;
    if (this.warnings.length < replayWarningCountMax) this.warnings.push(text);
  }

  /** One valid record, in file order. */
  onRecord(segment: string, record: ScannedRecord): void {
    const { op, timestampUs, requestCount } = record.header;
    const site: Site = { segment, position: record.position, op };
    this.recordCount += 1;
    if (!this.stopped && op !== this.opApplied + 1) {
      this.stop(`op ${op} follows op ${this.opApplied}: the journal has a gap`);
    }
    if (timestampUs <= this.timestampUsLast) {
      this.problem(site, `timestamp ${timestampUs} does not follow ${this.timestampUsLast}`);
    }
    this.timestampUsLast = Math.max(this.timestampUsLast, timestampUs);
    let requests: Request[];
    try {
      requests = decodeBatch(record.body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.problem(site, `prepare body does not decode as a batch: ${error.message}`);
      this.stop(`op ${op} cannot be decoded`);
      return;
    }
    if (requests.length !== requestCount) {
      const text = `header counts ${requestCount} requests, the body holds ${requests.length}`;
      this.problem(site, text);
    }
    if (this.stopped) {
      // Nothing applies after a gap; commands are still decoded to report every bad body.
      requests.forEach((request, index) => {
        if (request.operation !== 'command') return;
        this.decode(site, labelOf(request, index), request.body);
      });
      return;
    }
    const machine: StateMachine<null> = {
      apply: (body, meta) => {
        const label = labelOf(requests[meta.requestIndex]!, meta.requestIndex);
        return { result: this.applyCommand(site, label, body, meta), output: null };
      },
    };
    executeBatch(this.table, machine, { op, timestampUs }, requests, (outcome, request, index) =>
      this.onOutcome(site, outcome, request, index),
    );
    this.opApplied = op;
  }

  private stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.warning(`kernel replay stopped after op ${this.opApplied}: ${reason}`);
  }

  private onOutcome(
    site: Site,
    outcome: RequestOutcome<null>,
    request: Request,
    index: number,
  ): void {
    if (outcome.kind === 'registered') this.registerCount += 1;
    if (outcome.kind !== 'skipped' || outcome.reason === 'registered_already') return;
    this.skippedCount += 1;
    const last = this.table.get(request.clientId)?.requestNumber;
    const why = last === undefined ? 'has no session' : `follows request ${last}`;
    this.warning(`op ${site.op} ${labelOf(request, index)} ${why}; a replica skips it`);
  }

  private decode(site: Site, label: string, body: Uint8Array): Command | null {
    try {
      return decodeCommand(body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.problem(site, `${label}: command does not decode: ${error.message}`);
      return null;
    }
  }

  /** The state machine of the replay: the kernel, with every outcome checked on the side. */
  private applyCommand(site: Site, label: string, body: Uint8Array, meta: ApplyMeta): Uint8Array {
    const command = this.decode(site, label, body);
    // An undecodable command is applied by a replica as an error result (its session moves on).
    if (command === null) return replyResultUnkept;
    const { result } = apply(this.state, command, meta);
    this.commandCount += 1;
    if (result.status === 'error') this.rejectedCount += 1;
    else this.checkResult(site, meta.timestampUs, command, result);
    return replyResultUnkept;
  }

  private checkResult(
    site: Site,
    timestampUs: TimestampUs,
    command: Command,
    result: OkResult,
  ): void {
    if (result.kind === 'create_stream') {
      const genesis = streamGenesis(result.tenantId, result.streamId);
      this.chains.set(result.streamId, { nextOffset: 0, link: genesis });
      return;
    }
    if (result.kind !== 'append' || command.kind !== 'append') return;
    const chain = this.chains.get(command.streamId);
    if (chain === undefined) {
      this.problem(site, `append to stream ${command.streamId}, which was never created`);
      return;
    }
    if (result.firstOffset !== chain.nextOffset) {
      const text = `stream ${command.streamId}: append at offset ${result.firstOffset}`;
      this.problem(site, `${text}, but the stream ends at ${chain.nextOffset}`);
    }
    for (const data of command.events) {
      chain.link = eventLink(chain.link, asOffset(chain.nextOffset), timestampUs, data);
      chain.nextOffset += 1;
    }
    if (!checksumEqual(chain.link, result.chainHead)) {
      const text = `stream ${command.streamId}: chain head ${toHex(result.chainHead)}`;
      this.problem(site, `${text} differs from the recomputed ${toHex(chain.link)}`);
    }
  }

  /** The kernel's final streams against the recomputed chains. */
  finish(): number {
    let eventCount = 0;
    for (const stream of this.state.streams.values()) {
      eventCount += stream.nextOffset;
      const chain = this.chains.get(stream.id);
      const offsetOk = chain?.nextOffset === stream.nextOffset;
      if (chain === undefined || !offsetOk || !checksumEqual(chain.link, stream.chainHead)) {
        const text = `stream ${stream.id} of tenant ${stream.tenantId}: the kernel's state`;
        this.problem(
          null,
          `${text} (offset ${stream.nextOffset}) differs from its recomputed chain`,
        );
      }
    }
    return eventCount;
  }
}

async function scanOneSegment(
  io: FileIO,
  journalDir: string,
  target: { index: number; isLast: boolean; chain: ChainState },
  onRecord: (segment: string, record: ScannedRecord) => void,
): Promise<void> {
  const name = segmentFileName(target.index);
  const handle = await io.open(segmentPath(journalDir, target.index), 'read');
  try {
    await scanSegment({
      handle,
      fileSizeBytes: await handle.size(),
      segmentIndex: target.index,
      isLast: target.isLast,
      chain: target.chain,
      continueAfterProblem: true,
      onRecord: (record) => onRecord(name, record),
      // The storage verify reports every problem of the bytes; replay judges only records.
      onProblem: () => undefined,
    });
  } finally {
    await handle.close();
  }
}

/** Calls onRecord for every valid record of the journal, in file order, reading only. */
export async function forEachRecord(
  dir: string,
  cluster: number | null,
  io: FileIO,
  onRecord: (segment: string, record: ScannedRecord) => void,
): Promise<void> {
  const journalDir = journalDirOf(dir);
  if ((await io.stat(journalDir)) === null) return;
  const indexes = await listSegmentIndexes(io, journalDir);
  const chain = newChain(cluster);
  const lastIndex = indexes[indexes.length - 1] ?? -1;
  let expected = 0;
  for (const index of indexes) {
    if (index !== expected) {
      chain.opNext = null;
      chain.parent = null;
    }
    expected = index + 1;
    try {
      await scanOneSegment(io, journalDir, { index, isLast: index === lastIndex, chain }, onRecord);
    } catch (error) {
      // A programmer error is never taken for an unreadable segment.
      if (error instanceof AssertionError) throw error;
      // An unreadable segment is a storage problem, reported by the storage verify.
      chain.opNext = null;
      chain.parent = null;
    }
  }
}

/**
 * The client table bound the replica executed this journal with, as its superblock records it
 * (the default when there is no valid superblock: the storage verify reports that).
 */
export async function recordedSessionBound(dir: string, io: FileIO): Promise<number> {
  try {
    const reading = await readSuperblock(dir, io);
    const state = reading?.state;
    return state === undefined || state === null
      ? clientSessionCountMaxDefault
      : sessionBoundOf(state);
  } catch {
    // An unreadable superblock is a storage problem, reported by the storage verify.
    return clientSessionCountMaxDefault;
  }
}

/** Replays the journal of a data directory through the kernel; never writes anything. */
export async function replayDataDir(
  dir: string,
  cluster: number | null,
  io: FileIO = realFileIO,
): Promise<ReplayReport> {
  const replayer = new Replayer(await recordedSessionBound(dir, io));
  try {
    await forEachRecord(dir, cluster, io, (segment, record) => replayer.onRecord(segment, record));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    replayer.problem(null, `cannot read the journal for replay: ${message}`);
  }
  const eventCount = replayer.finish();
  return {
    ok: replayer.problemCount === 0,
    recordCount: replayer.recordCount,
    opApplied: replayer.opApplied,
    complete: !replayer.stopped,
    clientSessionCountMax: replayer.clientSessionCountMax,
    registerCount: replayer.registerCount,
    commandCount: replayer.commandCount,
    rejectedCount: replayer.rejectedCount,
    skippedCount: replayer.skippedCount,
    tenantCount: replayer.state.tenants.size,
    streamCount: replayer.state.streams.size,
    eventCount,
    stateDigest: toHex(stateDigest(replayer.state)),
    problems: replayer.problems,
    problemsOmittedCount: replayer.problemCount - replayer.problems.length,
    warnings: replayer.warnings,
    warningsOmittedCount: replayer.warningCount - replayer.warnings.length,
  };
}

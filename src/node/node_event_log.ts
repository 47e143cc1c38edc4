// The log lines a node writes for the replica's typed events and for requests it answers with
// an error: one place that decides each key event's message, level, module and fields, so that
// the node shell only forwards events here.
//
// Modules: consensus events are written by the `kimberlite_vsr` module (target kmb_consensus),
// so `KMB_LOG=kimberlite=info,kimberlite_vsr=debug` turns exactly them up; answers to clients by
// `kimberlite_net` (kmb_net). Every line carries node_id (a binding of the root logger), and the
// replica's view and op (and commit_index where it matters).
//
// Levels (docs/logging.md): became leader, view change started/finished, status changes,
// recovery, a repaired corrupt record at INFO; lost quorum, truncations at WARN; checksum
// mismatches and a diverging log at ERROR. Each is written once per event. Events that can
// storm are rate-limited per key: repair requests (INFO, one per 5 s per kind), checksum
// mismatches (ERROR, one per 10 s per source), corrupt records found by the scrubber (WARN).
// A request or query answered with an error code ("client error") is DEBUG: most are routine
// (not leader, retry later) and are counted by kmb_errors_total; a client bug shows up there.

import { decodeResult } from '../kernel/kernel.js';
import type { Logger } from '../observability/logger.js';
import type { ReplicaEvent } from '../vsr/message.js';

/** The replica's position, read when a line is written. */
export interface ReplicaPosition {
  readonly view: number;
  readonly op: number;
  readonly commitMax: number;
}

const repairIntervalMs = 5_000;
const checksumIntervalMs = 10_000;
const scrubIntervalMs = 10_000;

export class NodeEventLog {
  private readonly consensus: Logger;
  private readonly net: Logger;
  /** Monotonic ms when the open view change started, or null. */
  private viewChangeStartedMs: number | null = null;

  constructor(
    root: Logger,
    private readonly position: () => ReplicaPosition,
    private readonly monotonicMs: () => number = () => performance.now(),
  ) {
    this.consensus = root.child({}, 'kimberlite_vsr');
    this.net = root.child({}, 'kimberlite_net');
  }

  /** Logs one replica event (most are not logged; metrics count them). */
  onEvent(event: ReplicaEvent<unknown>): void {
    switch (event.kind) {
      case 'status_changed':
        this.consensus.info('Replica status changed', { ...this.at(), status: event.status });
        break;
      case 'view_change_started':
        this.viewChangeStartedMs ??= this.monotonicMs();
        this.consensus.info('View change started', {
          ...this.at(),
          view: event.view,
          old_view: event.oldView,
          reason: event.reason,
        });
        break;
      case 'view_change_finished':
        this.consensus.info('View change finished', {
          ...this.at(),
          view: event.view,
          old_view: event.oldView,
          leader: event.primary,
          op: event.op,
          commit_index: event.commit,
          duration_ms: this.viewChangeDurationMs(),
        });
        break;
      case 'became_primary':
        this.becameLeader(event.view, event.op, event.commit);
        break;
      default:
        this.onProblemEvent(event);
    }
  }

  /** "Became leader", for the event and for a single node that leads once it recovered. */
  becameLeader(view: number, op: number, commit: number): void {
    this.consensus.info('Became leader', { view, op, commit_index: commit });
  }

  /** A request or query this node answered with an error code. */
  clientError(code: string, fields: Readonly<Record<string, unknown>>): void {
    if (!this.net.enabled('debug')) return;
    this.net.debug('Client request failed', { ...this.at(), code, ...fields });
  }

  /** A command that committed but that the kernel refused (its result carries the code). */
  committedError(result: Uint8Array, fields: Readonly<Record<string, unknown>>): void {
    if (!this.net.enabled('debug')) return;
    let code = 'KMB_ERR_INTERNAL';
    try {
      const decoded = decodeResult(result);
      if (decoded.status === 'error') code = decoded.code;
    } catch {
      // An undecodable result is the kernel's bug, not the client's; report it as internal.
    }
    this.net.debug('Client request failed', { ...this.at(), code, committed: true, ...fields });
  }

  private onProblemEvent(event: ReplicaEvent<unknown>): void {
    switch (event.kind) {
      case 'primary_quorum':
        if (event.reachable) this.consensus.warn('Quorum reachable again', this.at());
        else this.consensus.warn('Leader lost its quorum', this.at());
        break;
      case 'checksum_failure':
        this.consensus.rateLimited(
          'error',
          `checksum:${event.source}`,
          checksumIntervalMs,
          'Checksum mismatch',
          { ...this.at(), op: event.op, source: event.source, from: event.from },
        );
        break;
      case 'log_truncated':
        this.consensus.warn('Truncated uncommitted ops', {
          ...this.at(),
          op: event.opMax,
          op_before: event.opMaxBefore,
          reason: event.reason,
        });
        break;
      case 'log_divergence':
        this.consensus.error('A view log contradicts committed ops: refusing it', {
          ...this.at(),
          op: event.op,
          from: event.from,
        });
        break;
      case 'session_evicted':
        this.consensus.info('Client session evicted', { ...this.at(), client_id: event.clientId });
        break;
      default:
        this.onRepairEvent(event);
    }
  }

  private onRepairEvent(event: ReplicaEvent<unknown>): void {
    switch (event.kind) {
      case 'repair_requested':
        this.consensus.rateLimited(
          'info',
          `repair:${event.request}`,
          repairIntervalMs,
          'Repair requested',
          {
            ...this.at(),
            request: event.request,
            op_first: event.opFirst,
            op_last: event.opLast,
            target: event.target,
          },
        );
        break;
      case 'repair_completed': {
        const fields = { ...this.at(), op: event.op, from: event.from, how: event.how };
        if (event.how === 'rewrite') this.consensus.info('Repaired corrupt record', fields);
        else if (this.consensus.enabled('debug')) this.consensus.debug('Repaired op', fields);
        break;
      }
      case 'scrub_progress':
        if (event.corruptOp === null) break;
        this.consensus.rateLimited('warn', 'scrub', scrubIntervalMs, 'Scrubber found corruption', {
          ...this.at(),
          op: event.corruptOp,
          corruptions: event.corruptionCount,
        });
        break;
      default:
        break;
    }
  }

  private at(): { view: number; op: number } {
    const { view, op } = this.position();
    return { view, op };
  }

  private viewChangeDurationMs(): number | null {
    const started = this.viewChangeStartedMs;
    this.viewChangeStartedMs = null;
    return started === null ? null : Math.round(this.monotonicMs() - started);
  }
}

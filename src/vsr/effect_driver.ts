// The one effect driver: it feeds a replica its inputs and hands every effect it returns to the
// sink that performs it. Production (node/node.ts), the simulator (testing/cluster.ts) and the
// scenario harness (vsr/testing_harness.test-support.ts) all run the replica through this class;
// they differ only in their sinks — a real disk, sockets and views, or simulated ones. So the
// switch below is the only place in the tree that maps an effect kind to its duty (message.ts
// lists the duties), and the simulator tests the same dispatch the node runs.
//
// The sinks are narrow on purpose: storage (journal and superblock; its completions come back
// through journalDurable / journalRead / superblockDurable), peers (replica messages), clients
// (replies and rejections), views (each executed op, in order), reads (when linearizable reads
// may be answered) and an observer (telemetry events, and every effect for tracing). Effects are
// handed over in the order the replica returned them; a sink that must keep an order between
// them (a truncation before the appends after it) keeps it itself.
//
// Pure: it performs nothing by itself, so it lives beside the replica and obeys the same
// determinism rule.

import type { Prepare } from '../core/header.js';
import type { ClientId, Op, ReplicaIndex, RequestNumber, View } from '../core/types.js';
import type { ErrorCode } from '../core/errors.js';
import type { Request } from './batch.js';
import type {
  Effect,
  ExecutedOp,
  JournalReadContext,
  Reply,
  ReplicaEvent,
  ReplicaMessage,
} from './message.js';
import type { RecoveryReport } from './recovery.js';
import type { Replica } from './replica.js';

/** What the superblock holds durably (a superblock_write). */
export interface SuperblockFields {
  readonly view: View;
  readonly logView: View;
  readonly commit: Op;
}

/** The disk: journal records and the superblock. Completions come back through the driver. */
export interface StorageSink {
  /** Write and fdatasync the prepare at its op, then call driver.journalDurable. */
  append(prepare: Prepare): void;
  /** Discard every record above opMax, durably, before any later append or superblock write. */
  truncate(opMax: Op): void;
  /** Read the record at op, then call driver.journalRead (null: missing, corrupt, or another). */
  read(op: Op, checksum: Uint8Array | null, context: JournalReadContext): void;
  /** Store the fields durably, then call driver.superblockDurable. One at a time. */
  writeSuperblock(fields: SuperblockFields): void;
}

/** The other replicas: best-effort delivery of one message to one of them. */
export interface PeerSink {
  send(target: ReplicaIndex, message: ReplicaMessage): void;
}

/** A refusal of one request, answered to its client. */
export interface Rejection {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly code: ErrorCode;
  readonly message: string;
  readonly leaderHint: number;
}

/** The clients: answers by client id, on whatever connection the client uses now. */
export interface ClientSink {
  reply(reply: Reply): void;
  reject(rejection: Rejection): void;
}

/** The derived views: every executed op, in op order, on every replica. */
export interface ViewSink<Output> {
  executed(op: ExecutedOp<Output>): void;
}

/** When this replica may answer linearizable reads (node/read_gate.ts). */
export interface ReadSink {
  /** Primary of `view`: readable once it has executed through `op`; it hears a quorum. */
  readsReady(view: View, op: Op): void;
  /** The primary of `view` lost (false) or regained (true) contact with a quorum. */
  quorumChanged(view: View, reachable: boolean): void;
}

/** Telemetry: may drop everything without changing any behaviour. */
export interface ObserverSink<Output> {
  event(event: ReplicaEvent<Output>): void;
  /** Every effect, before it is performed (traces, the simulator's run fingerprint). */
  effect?(effect: Effect<Output>): void;
  /** After each batch of effects (gauges that follow the replica's queues). */
  settled?(): void;
}

export interface ReplicaSinks<Output> {
  readonly storage: StorageSink;
  readonly peers: PeerSink;
  readonly clients: ClientSink;
  readonly views: ViewSink<Output>;
  readonly reads: ReadSink;
  readonly observer: ObserverSink<Output>;
}

/** The replica's entry points, by name (for a shell that reports which one failed). */
export type EntryName =
  | 'onRecoveredPrepare'
  | 'finishRecovery'
  | 'onRequest'
  | 'onMessage'
  | 'onTick'
  | 'onJournalDurable'
  | 'onJournalRead'
  | 'onSuperblockDurable';

/**
 * Wraps every call into the replica: the simulator turns an exception into a crash report
 * naming the entry point; production calls straight through.
 */
export type EnterReplica<Output> = (
  entry: EntryName,
  call: () => Effect<Output>[],
) => Effect<Output>[];

function enterDirectly<Output>(_entry: EntryName, call: () => Effect<Output>[]): Effect<Output>[] {
  return call();
}

export class EffectDriver<Output> {
  private readonly enter: EnterReplica<Output>;

  constructor(
    readonly replica: Replica<Output>,
    private readonly sinks: ReplicaSinks<Output>,
    enter?: EnterReplica<Output>,
  ) {
    this.enter = enter ?? enterDirectly;
  }

  // ----- inputs -----

  recoveredPrepare(prepare: Prepare): void {
    this.run('onRecoveredPrepare', () => this.replica.onRecoveredPrepare(prepare));
  }

  finishRecovery(report: RecoveryReport): void {
    this.run('finishRecovery', () => this.replica.finishRecovery(report));
  }

  request(request: Request): void {
    this.run('onRequest', () => this.replica.onRequest(request));
  }

  /** A peer's message; returns its effects for a shell that logs what was refused. */
  message(message: ReplicaMessage): readonly Effect<Output>[] {
    return this.run('onMessage', () => this.replica.onMessage(message));
  }

  tick(): void {
    this.run('onTick', () => this.replica.onTick());
  }

  journalDurable(op: Op, checksum: Uint8Array): void {
    this.run('onJournalDurable', () => this.replica.onJournalDurable(op, checksum));
  }

  journalRead(op: Op, prepare: Prepare | null, context: JournalReadContext): void {
    this.run('onJournalRead', () => this.replica.onJournalRead(op, prepare, context));
  }

  superblockDurable(): void {
    this.run('onSuperblockDurable', () => this.replica.onSuperblockDurable());
  }

  // ----- effects -----

  private run(entry: EntryName, call: () => Effect<Output>[]): readonly Effect<Output>[] {
    const effects = this.enter(entry, call);
    this.perform(effects);
    return effects;
  }

  /** Hands each effect, in order, to its sink. The only effect switch in the tree. */
  perform(effects: readonly Effect<Output>[]): void {
    const { storage, peers, clients, views, reads, observer } = this.sinks;
    for (const effect of effects) {
      observer.effect?.(effect);
      switch (effect.kind) {
        case 'journal_append':
          storage.append(effect.prepare);
          break;
        case 'journal_truncate':
          storage.truncate(effect.opMax);
          break;
        case 'journal_read':
          storage.read(effect.op, effect.checksum, effect.context);
          break;
        case 'superblock_write': {
          const { view, logView, commit } = effect;
          storage.writeSuperblock({ view, logView, commit });
          break;
        }
        case 'send':
          peers.send(effect.target, effect.message);
          break;
        case 'reply':
          clients.reply(effect.reply);
          break;
        case 'reject': {
          const { clientId, requestNumber, code, message, leaderHint } = effect;
          clients.reject({ clientId, requestNumber, code, message, leaderHint });
          break;
        }
        case 'executed':
          views.executed(effect);
          break;
        case 'reads_ready':
          reads.readsReady(effect.view, effect.op);
          break;
        case 'quorum_changed':
          reads.quorumChanged(effect.view, effect.reachable);
          break;
        case 'event':
          observer.event(effect.event);
          break;
        default: {
          const unknown: never = effect;
          throw new Error(`an effect kind the driver does not know: ${String(unknown)}`);
        }
      }
    }
    observer.settled?.();
  }
}

// One simulated replica process: its disk (which survives crashes), its clock, and — while it
// runs — a real Replica over the real kernel (`kernelStateMachine(createState())`, as the node
// shell wires it), driven through the node's effect driver (src/vsr/effect_driver.ts, with the
// simulated sinks of sim_sinks.ts), and the node's read gate (src/node/read_gate.ts), which
// learns from the replica's reads_ready / quorum_changed effects when reads may be answered.
// The kernel state machine is wrapped, not replaced: the wrapper passes every call through and,
// on the side, records what this incarnation applied, for the checkers:
//
//   - before the first command of each op, the kernel's stateDigest (the state after every
//     earlier op) goes to the state_digest checker;
//   - each applied command's audit correlation id (client.request) goes to the exactly_once
//     checker;
//   - each append's events are mirrored per stream, so the simulator can serve reads from
//     committed state and the acked_writes checker can look events up by offset.
//
// A crash discards the process: driver, replica, read gate, kernel state and these records. The
// disk remains. Invariants: `driver !== null` (and so `replica !== null`) exactly while the
// process runs; `epoch` counts incarnations and tags every pending disk completion, so one from
// a previous life is dropped.

import { assert } from '../core/assert.js';
import { DecodeError } from '../core/binary.js';
import { toHex } from '../core/checksum.js';
import { createState, decodeCommand, stateDigest } from '../kernel/kernel.js';
import type { State } from '../kernel/kernel.js';
import { kernelStateMachine } from '../kernel/kernel.js';
import type { KernelOutput } from '../kernel/kernel.js';
import { ReadGate } from '../node/read_gate.js';
import type { EffectDriver } from '../vsr/effect_driver.js';
import type { StateMachine } from '../vsr/replica.js';
import type { SafetyChecker } from './checkers.js';
import type { Prng } from './prng.js';
import type { SimReplica } from './replica_adapter.js';
import type { SimClock } from './sim_clock.js';
import type { SimStorage } from './sim_storage.js';

const textDecoder = new TextDecoder();

export class SimNode {
  /** The effect driver over this incarnation's replica; null while the process is down. */
  driver: EffectDriver<KernelOutput> | null = null;
  /** When this incarnation may answer reads: the node's rules, fed by the driver. */
  readGate = new ReadGate();
  epoch = 0;
  state: State = createState();
  /** Per stream: the events this incarnation applied, by offset. */
  streams = new Map<number, string[]>();
  private appliedRequests = new Set<string>();
  private lastAppliedOp = 0;
  /** The op of the last `committed` event this incarnation reported. */
  committedOp = 0;
  /** The tick at which a crashed replica restarts; null while it runs. */
  restartTick: number | null = null;
  readonly stats = { starts: 0, crashes: 0, restarts: 0, replayed: 0 };

  constructor(
    readonly index: number,
    readonly storage: SimStorage,
    readonly clock: SimClock,
    readonly prng: Prng,
    private readonly checker: SafetyChecker,
    /** A shell mutation for the checkers' tests: apply every command twice. */
    private readonly applyTwice = false,
  ) {}

  get replica(): SimReplica | null {
    return this.driver === null ? null : this.driver.replica;
  }

  get running(): boolean {
    return this.driver !== null;
  }

  /** The driver of the running incarnation. */
  runningDriver(): EffectDriver<KernelOutput> {
    assert(this.driver !== null, 'drive a running replica');
    return this.driver;
  }

  /** A fresh process: empty kernel state, records and read gate; the caller builds the driver. */
  boot(): StateMachine<KernelOutput> {
    assert(this.driver === null, 'boot a stopped node');
    this.epoch += 1;
    this.state = createState();
    this.streams = new Map();
    this.appliedRequests = new Set();
    this.lastAppliedOp = 0;
    this.committedOp = 0;
    this.readGate = new ReadGate();
    return this.tracked(kernelStateMachine(this.state));
  }

  /** The process dies: memory is gone, un-synced writes are resolved by the disk. */
  crash(): void {
    assert(this.driver !== null, 'crash a running node');
    this.driver = null;
    this.epoch += 1;
    this.storage.crash();
    this.stats.crashes += 1;
  }

  private tracked(inner: StateMachine<KernelOutput>): StateMachine<KernelOutput> {
    return {
      apply: (body, meta) => {
        if (meta.op !== this.lastAppliedOp) {
          this.checker.onStateBoundary(this.index, meta.op - 1, toHex(stateDigest(this.state)));
          this.lastAppliedOp = meta.op;
        }
        const applied = inner.apply(body, meta);
        this.record(body, applied.output);
        if (this.applyTwice) this.record(body, inner.apply(body, meta).output);
        return applied;
      },
    };
  }

  private record(body: Uint8Array, output: KernelOutput): void {
    let command;
    try {
      command = decodeCommand(body);
    } catch (error) {
      if (error instanceof DecodeError) return; // The kernel answered invalid_argument.
      throw error;
    }
    const correlationId = command.audit.correlationId;
    if (correlationId !== null) {
      if (this.appliedRequests.has(correlationId)) {
        this.checker.report(
          'exactly_once',
          `replica ${this.index} applied request ${correlationId} twice`,
        );
      }
      this.appliedRequests.add(correlationId);
    }
    for (const effect of output.effects) {
      if (effect.kind !== 'events_appended' || command.kind !== 'append') continue;
      const events = this.streams.get(effect.streamId) ?? [];
      assert(events.length === effect.firstOffset, 'mirrored stream matches the kernel');
      for (const event of command.events) events.push(textDecoder.decode(event));
      this.streams.set(effect.streamId, events);
    }
  }
}

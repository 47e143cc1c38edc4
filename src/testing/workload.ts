// The simulated clients and the workload they run, and the history they observe.
//
// Each client registers a session (request 0), then issues one operation at a time: create a
// tenant, create a stream, append events (with or without an expected offset), or read a
// stream (linearizably from the leader, or accepting staleness from any replica). It behaves
// as the SDK does: it sends to the replica it believes is the leader, follows not_leader
// hints, backs off on not_ready / backpressure / ordering rejections, and on
// a timeout re-sends the SAME request number to the next replica (the exactly-once path: the
// cluster must answer from its client table rather than apply the request twice).
//
// Every logical operation is recorded from its first send to the reply that ends it, with
// global event sequence numbers as time, for the linearizability checker; every acknowledged
// write is recorded with the op that committed it, for the "no acknowledged write is lost"
// checker. Event payloads are unique strings naming the client, request and position, and each
// command's audit correlation id names the client and request number (the exactly-once
// checker reads it back from what replicas apply).
//
// Invariants: a client has at most one operation in flight; request numbers go up by one per
// operation (reads have no request number); no two commands share a correlation id.

import { assert } from '../core/assert.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { asClientId, asOffset, asRequestNumber, asStreamId, asTenantId } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { decodeResult, encodeCommand } from '../kernel/kernel.js';
import type { Command, CommandResult } from '../kernel/kernel.js';
import type { Request } from '../vsr/batch.js';
import type { Reply } from '../vsr/message.js';
import type { Prng } from './prng.js';

/** What a client sends to a replica. */
export type ClientToReplica =
  | { readonly kind: 'request'; readonly request: Request }
  | {
      readonly kind: 'read';
      readonly client: number;
      readonly readId: number;
      readonly streamId: number;
      /** A stale read may be served by any normal replica within `staleLagOpsMax` of its commit. */
      readonly stale: boolean;
    };

/** What a replica (or the simulator's read path at a replica) answers. */
export type ReplicaToClient =
  | { readonly kind: 'reply'; readonly reply: Reply }
  | {
      readonly kind: 'reject';
      readonly requestNumber: number;
      readonly code: ErrorCode;
      readonly leaderHint: number;
    }
  | {
      readonly kind: 'read_result';
      readonly readId: number;
      /** The stream's events, or null with a code when the read was refused. */
      readonly events: readonly string[] | null;
      readonly code: ErrorCode | null;
      readonly leaderHint: number;
    };

export interface WorkloadOptions {
  readonly clientCount: number;
  readonly tenantNamePoolSize: number;
  readonly streamNamePoolSize: number;
  /** Relative weights of the operation kinds. */
  readonly weights: {
    readonly createTenant: number;
    readonly createStream: number;
    readonly append: number;
    readonly appendExpected: number;
    readonly read: number;
    /** Reads that accept staleness (served by any replica), as the SDK's consistency: 'stale'. */
    readonly staleRead: number;
  };
  readonly requestTimeoutTicks: number;
  readonly backoffTicksMax: number;
  readonly thinkTicksMax: number;
}

/** A client-observed operation, for the checkers. */
export interface ObservedOp {
  readonly id: number;
  readonly client: number;
  readonly kind: 'create_tenant' | 'create_stream' | 'append' | 'read' | 'stale_read';
  readonly command: Command | null;
  readonly streamId: number | null;
  readonly events: readonly string[];
  readonly callTime: number;
  returnTime: number;
  /** The kernel's result for commands; null while pending, and for reads. */
  result: CommandResult | null;
  /** The events a read returned. */
  readEvents: readonly string[] | null;
  /** The op that committed the command (from the reply). */
  commitOp: number | null;
}

/** Knowledge the clients share: which tenants and streams exist, as learned from replies. */
export class Workload {
  readonly history: ObservedOp[] = [];
  readonly tenants: { id: number; name: string }[] = [];
  readonly streams: { id: number; tenantId: number }[] = [];
  /** Global time for the history: one step per call or return. */
  private clock = 0;
  issuing = true;

  constructor(
    readonly prng: Prng,
    readonly options: WorkloadOptions,
  ) {}

  timestamp(): number {
    return ++this.clock;
  }

  learn(op: ObservedOp): void {
    const result = op.result;
    if (result === null || result.status !== 'ok') return;
    if (result.kind === 'create_tenant' && !this.tenants.some((t) => t.id === result.tenantId)) {
      this.tenants.push({ id: result.tenantId, name: result.name });
    }
    if (result.kind === 'create_stream' && !this.streams.some((s) => s.id === result.streamId)) {
      this.streams.push({ id: result.streamId, tenantId: result.tenantId });
    }
  }
}

type Plan =
  | { readonly kind: 'command'; readonly command: Command; readonly op: ObservedOp }
  | {
      readonly kind: 'read';
      readonly streamId: number;
      readonly op: ObservedOp;
      readonly stale: boolean;
    };

type InFlight =
  | { readonly kind: 'request'; readonly request: Request; readonly op: ObservedOp | null }
  | {
      readonly kind: 'read';
      readonly readId: number;
      readonly streamId: number;
      readonly stale: boolean;
      readonly op: ObservedOp;
    };

export interface ClientTransport {
  send(client: number, replica: number, message: ClientToReplica): void;
}

export class SimClient {
  readonly id: ClientId;
  private requestNumberNext = 0;
  private readIdNext = 1;
  private inFlight: InFlight | null = null;
  private target = 0;
  /** When the in-flight operation is (re)sent next, or when the next one may start. */
  private wakeTick = 0;
  /** True while waiting out a backoff: the wake-up re-sends to the same replica. */
  private backingOff = false;
  /** Per stream: the length this client last observed, for expected-offset appends. */
  private readonly knownLength = new Map<number, number>();
  readonly stats = { retries: 0, timeouts: 0, rejects: 0, evicted: false };

  constructor(
    readonly index: number,
    private readonly replicaCount: number,
    private readonly workload: Workload,
    private readonly transport: ClientTransport,
  ) {
    const prng = workload.prng;
    const hex = [prng.u32(), prng.u32(), prng.u32(), index]
      .map((x) => (x >>> 0).toString(16).padStart(8, '0'))
      .join('');
    this.id = asClientId(hex);
    this.target = prng.below(replicaCount);
    this.wakeTick = prng.intInclusive(0, workload.options.thinkTicksMax);
  }

  get idle(): boolean {
    return this.inFlight === null;
  }

  get registered(): boolean {
    return this.requestNumberNext > 0;
  }

  /** Called once per tick. */
  step(now: number): void {
    if (this.stats.evicted || now < this.wakeTick) return;
    if (this.inFlight === null) {
      if (this.registered && !this.workload.issuing) return;
      this.start(now);
      return;
    }
    if (!this.backingOff) {
      this.stats.timeouts += 1;
      this.target = (this.target + 1) % this.replicaCount;
    }
    this.resend(now, this.workload.options.requestTimeoutTicks);
  }

  private start(now: number): void {
    if (!this.registered) {
      const request: Request = {
        clientId: this.id,
        requestNumber: asRequestNumber(0),
        operation: 'register',
        body: new Uint8Array(0),
      };
      this.inFlight = { kind: 'request', request, op: null };
    } else {
      const plan = this.plan();
      if (plan.kind === 'read') {
        this.inFlight = {
          kind: 'read',
          readId: this.readIdNext++,
          streamId: plan.streamId,
          stale: plan.stale,
          op: plan.op,
        };
      } else {
        const request: Request = {
          clientId: this.id,
          requestNumber: asRequestNumber(this.requestNumberNext),
          operation: 'command',
          body: encodeCommand(plan.command),
        };
        this.inFlight = { kind: 'request', request, op: plan.op };
      }
      this.workload.history.push(this.inFlight.op as ObservedOp);
    }
    this.resend(now, this.workload.options.requestTimeoutTicks);
  }

  private resend(now: number, waitTicks: number): void {
    const inFlight = this.inFlight;
    assert(inFlight !== null, 'something to send');
    this.wakeTick = now + waitTicks;
    this.backingOff = false;
    if (inFlight.kind === 'request') {
      this.transport.send(this.index, this.target, { kind: 'request', request: inFlight.request });
    } else {
      const { readId, streamId, stale } = inFlight;
      // A stale read may be served by any replica: each attempt asks one at random.
      const target = stale ? this.workload.prng.below(this.replicaCount) : this.target;
      const message: ClientToReplica = {
        kind: 'read',
        client: this.index,
        readId,
        streamId,
        stale,
      };
      this.transport.send(this.index, target, message);
    }
  }

  /** Handles a replica's answer; stale answers (to earlier attempts or operations) are ignored. */
  onMessage(message: ReplicaToClient, now: number): void {
    const inFlight = this.inFlight;
    if (inFlight === null) return;
    if (message.kind === 'read_result') {
      if (inFlight.kind !== 'read' || message.readId !== inFlight.readId) return;
      if (message.events === null) return this.onRefused(message.code, message.leaderHint, now);
      inFlight.op.readEvents = message.events;
      this.knownLength.set(inFlight.streamId, message.events.length);
      return this.complete(inFlight.op, now);
    }
    if (inFlight.kind !== 'request') return;
    if (message.kind === 'reject') {
      if (message.requestNumber !== inFlight.request.requestNumber) {
        if (message.code === errorCodes.session_evicted) this.stats.evicted = true;
        return;
      }
      return this.onRefused(message.code, message.leaderHint, now);
    }
    if (message.reply.requestNumber !== inFlight.request.requestNumber) return;
    if (message.reply.clientId !== this.id) return;
    this.requestNumberNext = inFlight.request.requestNumber + 1;
    if (inFlight.op === null) return this.complete(null, now);
    const op = inFlight.op;
    op.result = decodeResult(message.reply.result);
    op.commitOp = message.reply.op;
    this.observeResult(op);
    this.complete(op, now);
  }

  private observeResult(op: ObservedOp): void {
    const result = op.result;
    if (op.streamId === null || result === null) return;
    if (result.status === 'ok' && result.kind === 'append') {
      this.knownLength.set(op.streamId, result.firstOffset + result.count);
    }
  }

  private onRefused(code: ErrorCode | null, leaderHint: number, now: number): void {
    this.stats.rejects += 1;
    assert(code !== errorCodes.invalid_argument, 'the workload sent an invalid request');
    if (code === errorCodes.session_evicted) {
      this.stats.evicted = true;
      return;
    }
    this.stats.retries += 1;
    if (code === errorCodes.not_leader && leaderHint >= 0 && leaderHint !== this.target) {
      this.target = leaderHint;
      this.resend(now, 1);
      return;
    }
    const backoff = this.workload.prng.intInclusive(1, this.workload.options.backoffTicksMax);
    this.wakeTick = now + backoff;
    this.backingOff = true;
  }

  private complete(op: ObservedOp | null, now: number): void {
    if (op !== null) {
      op.returnTime = this.workload.timestamp();
      this.workload.learn(op);
    }
    this.inFlight = null;
    this.wakeTick = now + this.workload.prng.intInclusive(0, this.workload.options.thinkTicksMax);
  }

  // ----- choosing the next operation -----

  private plan(): Plan {
    const workload = this.workload;
    const prng = workload.prng;
    const w = workload.options.weights;
    const hasStreams = workload.streams.length > 0;
    const hasTenants = workload.tenants.length > 0;
    const choices: [number, () => Plan][] = [
      [w.createTenant + (hasTenants ? 0 : 1), () => this.createTenant()],
      [hasTenants ? w.createStream + (hasStreams ? 0 : 1) : 0, () => this.createStream()],
      [hasStreams ? w.append : 0, () => this.append(false)],
      [hasStreams ? w.appendExpected : 0, () => this.append(true)],
      [hasStreams ? w.read : 0, () => this.read(false)],
      [hasStreams ? w.staleRead : 0, () => this.read(true)],
    ];
    const total = choices.reduce((sum, [weight]) => sum + weight, 0);
    let pick = prng.float() * total;
    for (const [weight, make] of choices) {
      if (pick < weight) return make();
      pick -= weight;
    }
    return this.createTenant();
  }

  private newOp(
    kind: ObservedOp['kind'],
    command: Command | null,
    streamId: number | null,
  ): ObservedOp {
    const events =
      command?.kind === 'append' ? command.events.map((e) => new TextDecoder().decode(e)) : [];
    return {
      id: this.workload.history.length + 1,
      client: this.index,
      kind,
      command,
      streamId,
      events,
      callTime: this.workload.timestamp(),
      returnTime: Infinity,
      result: null,
      readEvents: null,
      commitOp: null,
    };
  }

  private audit(): Command['audit'] {
    return {
      actor: `client-${this.index}`,
      reason: 'vopr workload',
      correlationId: `${this.index}.${this.requestNumberNext}`,
    };
  }

  private createTenant(): Plan {
    const name = `tenant-${this.workload.prng.below(this.workload.options.tenantNamePoolSize)}`;
    const command: Command = { kind: 'create_tenant', name, audit: this.audit() };
    return { kind: 'command', command, op: this.newOp('create_tenant', command, null) };
  }

  private createStream(): Plan {
    const prng = this.workload.prng;
    const tenants = this.workload.tenants;
    // Now and then a tenant id nobody created yet: exercises tenant_not_found.
    const tenantId = prng.chance(0.05) ? tenants.length + 1 : prng.pick(tenants).id;
    const name = `stream-${prng.below(this.workload.options.streamNamePoolSize)}`;
    const command: Command = {
      kind: 'create_stream',
      tenantId: asTenantId(tenantId),
      name,
      dataClass: prng.pick(['PHI', 'PII', 'Public', 'Financial'] as const),
      audit: this.audit(),
    };
    return { kind: 'command', command, op: this.newOp('create_stream', command, null) };
  }

  private append(withExpected: boolean): Plan {
    const prng = this.workload.prng;
    const stream = prng.pick(this.workload.streams);
    const count = prng.intInclusive(1, 3);
    const events: Uint8Array[] = [];
    for (let j = 0; j < count; j++) {
      const padding = '.'.repeat(prng.below(24));
      events.push(
        new TextEncoder().encode(`c${this.index}r${this.requestNumberNext}e${j}${padding}`),
      );
    }
    let expected: number | null = null;
    if (withExpected) {
      expected = this.knownLength.get(stream.id) ?? 0;
      if (prng.chance(0.1)) expected += prng.pick([-1, 1]);
      expected = Math.max(0, expected);
    }
    const command: Command = {
      kind: 'append',
      tenantId: asTenantId(stream.tenantId),
      streamId: asStreamId(stream.id),
      expectedOffset: expected === null ? null : asOffset(expected),
      events,
      audit: this.audit(),
    };
    return { kind: 'command', command, op: this.newOp('append', command, stream.id) };
  }

  private read(stale: boolean): Plan {
    const stream = this.workload.prng.pick(this.workload.streams);
    const op = this.newOp(stale ? 'stale_read' : 'read', null, stream.id);
    return { kind: 'read', streamId: stream.id, op, stale };
  }
}

// Append coalescing: many concurrent single appends to one stream become one append command.
//
// Every request costs the cluster a fixed amount of work on every replica (decode, session
// check, journal record, reply), whatever it carries; the events in it cost far less each. A
// client that calls append() many times at once (one event per call, say) therefore gets several
// times the throughput when those calls travel together. The coalescer does this without a
// timer: an append waits only while every write slot of the client is taken (all of its
// sessions have a command in flight). The first append on an idle client leaves at once (after
// the current tick, so appends made in the same tick go together); under load, the appends
// that arrive while the slots are busy go out together as soon as one frees, so batches grow
// exactly as fast as the cluster falls behind. This is the classic group commit, client side.
//
// What a caller sees is unchanged except in one point. Each call gets its own firstOffset and
// count (its events stay contiguous and in call order inside the command); the command is
// atomic, so calls that travel together commit or fail together, and since they share a stream
// and carry no expected offset, they would all fail alike anyway. The point that changes:
// chainHead is the stream's head after the whole command, which for every call but the last in
// it lies after that call's own events (still a head that covers them).
//
// Only calls with the same key are merged: Client.append keys them by tenant, stream and audit
// fields, and gives an append with an expected offset or its own trace context a key of its own.
// Order: with one slot (pipelineMax 1) commands leave in call order, so appends commit in the
// order they were called; with more slots there is no order between calls not awaited.
// Bounds: a command carries at most `eventCountMax` events and about `bodySizeBytesMax` bytes;
// at most `pendingEventCountMax` events wait, beyond which append() is refused with the
// retryable KMB_ERR_BACKPRESSURE.

import { assert } from '../core/assert.js';
import { kmbError } from '../core/errors.js';
import type { Offset } from '../core/types.js';
import { asOffset } from '../core/types.js';
import type { AppendResult } from './results.js';

/** What the coalescer needs from the client: send one append command of these events. */
export type SendAppend<Template> = (
  template: Template,
  events: Uint8Array[],
) => Promise<AppendResult>;

export interface AppendCoalescerOptions<Template> {
  /** Commands this client may have in flight at once (its pipelineMax). */
  readonly slotCountMax: number;
  /** Events one command may carry. */
  readonly eventCountMax: number;
  /** The most event bytes (with per-event framing) one command may carry. */
  readonly bodySizeBytesMax: number;
  /** Events that may wait for a slot, across all streams. */
  readonly pendingEventCountMax: number;
  readonly send: SendAppend<Template>;
}

/** Bytes a command spends per event besides the event itself (its length field), rounded up. */
export const eventFramingBytes = 8;

interface Call {
  /** Call order across all streams (the one-slot client keeps it). */
  readonly seq: number;
  readonly events: Uint8Array[];
  readonly sizeBytes: number;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

interface Group<Template> {
  readonly template: Template;
  readonly calls: Call[];
  /** Index of the first call not yet sent (calls before it left in earlier commands). */
  head: number;
  eventCount: number;
}

export class AppendCoalescer<Template> {
  /** Streams with calls waiting, in the order they first had one (served round robin). */
  private readonly groups = new Map<string, Group<Template>>();
  private inFlightCount = 0;
  private pendingEventCount = 0;
  private flushScheduled = false;
  private seqNext = 0;

  constructor(private readonly options: AppendCoalescerOptions<Template>) {
    assert(options.slotCountMax >= 1, 'a client has at least one write slot');
    assert(options.eventCountMax >= 1, 'a command carries at least one event');
    assert(options.pendingEventCountMax >= options.eventCountMax, 'a full command can wait');
  }

  /** Commands sent and not yet answered. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Events waiting for a slot. */
  get pending(): number {
    return this.pendingEventCount;
  }

  /**
   * Queues `events` for the stream that `key` names (with `template`'s tenant, stream and audit
   * fields); resolves with this call's own offsets once the command carrying them commits.
   */
  append(key: string, template: Template, events: Uint8Array[]): Promise<AppendResult> {
    if (this.pendingEventCount + events.length > this.options.pendingEventCountMax) {
      const max = this.options.pendingEventCountMax;
      const error = kmbError('backpressure', `${max} appended events already wait to be sent`);
      return Promise.reject(error);
    }
    let sizeBytes = 0;
    for (const event of events) sizeBytes += event.length + eventFramingBytes;
    return new Promise<AppendResult>((resolve, reject) => {
      let group = this.groups.get(key);
      if (group === undefined) {
        group = { template, calls: [], head: 0, eventCount: 0 };
        this.groups.set(key, group);
      }
      group.calls.push({ seq: this.seqNext++, events, sizeBytes, resolve, reject });
      group.eventCount += events.length;
      this.pendingEventCount += events.length;
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Sends commands while a slot is free and calls wait. */
  private flush(): void {
    if (this.options.slotCountMax === 1) {
      this.flushInOrder();
      return;
    }
    while (this.inFlightCount < this.options.slotCountMax && this.groups.size > 0) {
      const freeSlots = this.options.slotCountMax - this.inFlightCount;
      for (const [key, group] of this.groups) {
        if (this.inFlightCount >= this.options.slotCountMax) break;
        // Several free slots share the waiting events (more commands in flight at once), but
        // each command takes at least a fair share so that small commands do not swamp them.
        const share = Math.ceil(group.eventCount / Math.max(1, Math.min(freeSlots, 8)));
        this.sendBatch(group, share, Infinity);
        if (group.head === group.calls.length) this.groups.delete(key);
      }
    }
  }

  /**
   * One slot: appends commit in call order, so a command takes the oldest waiting call and the
   * calls of its stream that follow it up to the first call of another stream.
   */
  private flushInOrder(): void {
    if (this.inFlightCount > 0) return;
    let oldest: [string, Group<Template>] | null = null;
    let nextSeq = Infinity;
    for (const entry of this.groups) {
      const seq = entry[1].calls[entry[1].head]!.seq;
      if (oldest === null || seq < oldest[1].calls[oldest[1].head]!.seq) {
        if (oldest !== null) nextSeq = Math.min(nextSeq, oldest[1].calls[oldest[1].head]!.seq);
        oldest = entry;
      } else {
        nextSeq = Math.min(nextSeq, seq);
      }
    }
    if (oldest === null) return;
    const [key, group] = oldest;
    this.sendBatch(group, group.eventCount, nextSeq);
    if (group.head === group.calls.length) this.groups.delete(key);
  }

  /** Sends the group's next calls: at least one, up to `share` events, the bounds and `seqLimit` (exclusive). */
  private sendBatch(group: Group<Template>, share: number, seqLimit: number): void {
    const calls: Call[] = [];
    let eventCount = 0;
    let sizeBytes = 0;
    const limit = Math.min(Math.max(1, share), this.options.eventCountMax);
    while (group.head < group.calls.length) {
      const call = group.calls[group.head]!;
      const fits =
        call.seq < seqLimit &&
        eventCount + call.events.length <= limit &&
        sizeBytes + call.sizeBytes <= this.options.bodySizeBytesMax;
      if (calls.length > 0 && !fits) break;
      calls.push(call);
      eventCount += call.events.length;
      sizeBytes += call.sizeBytes;
      group.head += 1;
    }
    assert(calls.length > 0, 'a command carries at least one call');
    group.eventCount -= eventCount;
    this.pendingEventCount -= eventCount;
    if (group.head > 1024 && group.head * 2 > group.calls.length) {
      group.calls.splice(0, group.head); // Keep the queue's dead prefix from growing.
      group.head = 0;
    }
    const events = calls.length === 1 ? calls[0]!.events : calls.flatMap((call) => call.events);
    this.inFlightCount += 1;
    this.options.send(group.template, events).then(
      (result) => {
        this.settled();
        if (result.count === events.length) settle(calls, result);
        else {
          const detail = `an append of ${events.length} events was answered for ${result.count}`;
          for (const call of calls) call.reject(kmbError('frame_malformed', detail));
        }
      },
      (error: unknown) => {
        this.settled();
        for (const call of calls) call.reject(error);
      },
    );
  }

  private settled(): void {
    this.inFlightCount -= 1;
    assert(this.inFlightCount >= 0, 'a command settles once');
    if (this.groups.size > 0) this.scheduleFlush();
  }
}

/** Gives each call its own slice of the command's offsets. */
function settle(calls: readonly Call[], result: AppendResult): void {
  let offset: number = result.firstOffset;
  for (const call of calls) {
    const firstOffset: Offset = asOffset(offset);
    offset += call.events.length;
    call.resolve({ firstOffset, count: call.events.length, chainHead: result.chainHead });
  }
}

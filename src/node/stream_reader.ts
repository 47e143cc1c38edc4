// Reads a range of a stream's events: the stream index (views/stream_index.ts) says which appends
// hold them, and the journal gives back the prepares of those appends. Reads cost per event and
// per byte, not per op:
//   - the appends of the whole range are found in one search and a walk of the index;
//   - their prepares are read in steps of about readBatchSizeBytesMax of records, each step in as
//     few reads as their layout allows (Journal.readMany: close ops of one segment in one read),
//     and every record is verified on its own (header and body checksums) as it is read;
//   - nothing of a prepare is decoded but the wanted appends' events, taken straight from their
//     encoding, one view each (batch_walk.ts);
//   - one small cache of verified prepares fits what readers do: it is fed the prepares this
//     replica journals (remember()), which serve readers that tail a live stream without
//     touching the disk; the prepares of a small read (a tail or a point read, likely read
//     again); and the last prepare of each step of a longer read, which is where the next page
//     of a reader paging through a stream most often starts (a scan keeps nothing else, so it
//     does not flush the cache).
//
// GC: the cache is small (why: docs/performance.md, "Figures behind the code"), so what it holds
// dies young. A step's prepares are views into the buffers their runs were read into; those that
// are cached are copied first, so no cached prepare holds a run's whole buffer alive.
// Everything else a read makes (spans, views, event records) is garbage once the answer is
// encoded, and a read makes few objects beyond one record and one view per event.
//
// Invariants: the read is a prefix of the stream as of its call: the appends are looked up
// before the first await, below the end the caller snapshotted; events come back in offset
// order, contiguous from the first offset asked for, at least one when any is in range, and their
// data bytes stay within readSizeBytesMax except for a first event larger than that. A record
// that fails its checksums rejects the read with KMB_ERR_STORAGE_CORRUPT (journal_read.ts).

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import type { Op, StreamId, TimestampUs } from '../core/types.js';
import { asOffset } from '../core/types.js';
import type { EventRecord } from '../net/client_protocol.js';
import type { Journal } from '../storage/journal.js';
import { AppendSpans } from '../views/stream_index.js';
import type { StreamIndex } from '../views/stream_index.js';
import { BatchWalk, u32 } from './batch_walk.js';

/**
 * Prepares kept for reads. 256: enough for reads that tail a stream, and short-lived enough to
 * stay in V8's young generation. It held 4096, and at a few thousand small prepares a second each
 * one lived a second or more, was promoted to the old generation and died there, costing
 * mark-compacts (docs/performance.md, "Figures behind the code").
 */
export const prepareCacheCountMax = 256;
/** The body bytes the cached prepares hold, at most. */
export const prepareCacheBytesMax = 64 * 1024 * 1024;
/**
 * Record bytes of one step of a read: the journal reads a step's prepares before any of its
 * events are taken, so this bounds the bytes read past where the answer's size bound stops it.
 */
export const readBatchSizeBytesMax = 1024 * 1024;
/**
 * A read done in one step that takes at most this many prepares from the journal keeps them all
 * in the cache (a tail or a point read, likely to be read again); any other keeps only the last
 * one of each step, where the next page starts, so that a scan does not flush the cache.
 */
export const readCacheFillOpCountMax = 128;

/** What a stream read needs of the journal (Journal has it; tests may count the calls). */
export type JournalReads = Pick<Journal, 'readMany' | 'recordSizeBytes'>;

export class StreamReader {
  private readonly prepares = new Map<Op, Prepare>();
  private preparesBytes = 0;

  constructor(
    private readonly index: StreamIndex,
    private readonly journal: JournalReads,
  ) {}

  /**
   * Keeps a verified prepare for reads, evicting the oldest past the bounds. A prepare of an op
   * already kept replaces it: a view change may cut an uncommitted op and journal another one
   * under its number.
   */
  remember(prepare: Prepare): void {
    const op = prepare.header.op;
    const replaced = this.prepares.get(op);
    if (replaced !== undefined) {
      this.prepares.delete(op);
      this.preparesBytes -= replaced.body.length;
    }
    this.prepares.set(op, prepare);
    this.preparesBytes += prepare.body.length;
    while (this.prepares.size > prepareCacheCountMax || this.preparesBytes > prepareCacheBytesMax) {
      const oldest = this.prepares.entries().next();
      assert(!oldest.done, 'cache over its bounds is not empty');
      this.prepares.delete(oldest.value[0]);
      this.preparesBytes -= oldest.value[1].body.length;
    }
  }

  /**
   * The events [fromOffset, endOffset) of the stream, or a prefix of them that keeps within
   * readSizeBytesMax. endOffset must not pass the stream's committed end.
   */
  async read(streamId: StreamId, fromOffset: number, endOffset: number): Promise<EventRecord[]> {
    const spans = new AppendSpans(Math.max(0, endOffset - fromOffset));
    this.index.appendsIn(streamId, fromOffset, endOffset, spans);
    assert(fromOffset >= endOffset || spans.count > 0, 'every committed offset is indexed');
    const page = new Page(spans, streamId, fromOffset, endOffset);
    while (page.spanNext < spans.count && !page.full) {
      const ops = this.step(spans, page.spanNext);
      const whole = page.spanNext === 0 && spans.op(spans.count - 1) === ops[ops.length - 1];
      await this.collectStep(page, ops, whole);
    }
    assert(endOffset <= fromOffset || page.events.length > 0, 'a read returns an event');
    return page.events;
  }

  /** The distinct ops of the next step from span `first`, ascending. */
  private step(spans: AppendSpans, first: number): Op[] {
    const ops: Op[] = [];
    let sizeBytes = 0;
    for (let j = first; j < spans.count; j++) {
      const op = spans.op(j);
      if (ops.length > 0 && op === ops[ops.length - 1]) continue;
      assert(ops.length === 0 || op > ops[ops.length - 1]!, 'a stream ascends through the log');
      if (ops.length > 0 && sizeBytes >= readBatchSizeBytesMax) break;
      ops.push(op);
      sizeBytes += this.journal.recordSizeBytes(op);
    }
    return ops;
  }

  /**
   * Collects the events of the step's ops in order: cached prepares at once, the others as the
   * journal verifies them (one batched read). Those read are cached as readCacheFillOpCountMax
   * says (`whole`: the step is the whole read), as copies: a read prepare is a view into its
   * run's buffer, which must not outlive the read.
   */
  private async collectStep(page: Page, ops: readonly Op[], whole: boolean): Promise<void> {
    // Taken from the cache now: appends made while the journal reads may evict them.
    const cached = ops.map((op) => this.prepares.get(op));
    const missing = ops.filter((_, i) => cached[i] === undefined);
    const keepFrom = whole && missing.length <= readCacheFillOpCountMax ? 0 : missing.length - 1;
    let next = 0;
    /** Collects the cached ops before ops[upTo]. */
    const cachedUpTo = (upTo: number): void => {
      for (; next < upTo; next++) page.collectOp(cached[next]!);
    };
    if (missing.length > 0) {
      let at = 0;
      await this.journal.readMany(missing, (prepare, k) => {
        while (ops[at] !== missing[k]) at += 1;
        cachedUpTo(at);
        page.collectOp(prepare);
        next = at + 1;
        if (k >= keepFrom) {
          this.remember({
            ...prepare,
            headerBytes: prepare.headerBytes.slice(),
            body: prepare.body.slice(),
          });
        }
      });
    }
    cachedUpTo(ops.length);
  }
}

/** The answer being built, and the next span it takes. */
class Page {
  readonly events: EventRecord[] = [];
  sizeBytes = 0;
  full = false;
  spanNext = 0;

  constructor(
    private readonly spans: AppendSpans,
    private readonly streamId: StreamId,
    private readonly fromOffset: number,
    private readonly endOffset: number,
  ) {}

  /** Adds the events of the spans in the prepare's op (the next ones), until the page is full. */
  collectOp(prepare: Prepare): void {
    const spans = this.spans;
    const op = prepare.header.op;
    assert(this.spanNext < spans.count && spans.op(this.spanNext) === op, 'ops come in order');
    const walk = new BatchWalk(prepare.body);
    for (; this.spanNext < spans.count && spans.op(this.spanNext) === op; this.spanNext++) {
      if (this.full) continue;
      walk.toAppend(spans.requestIndex(this.spanNext));
      assert(walk.streamId === this.streamId, 'an indexed append is to its stream');
      this.collectEvents(this.spanNext, walk, prepare.header.timestampUs);
    }
  }

  /** Adds span j's events in the page's range, from their encoding (EncodedEvents' layout). */
  private collectEvents(j: number, walk: BatchWalk, timestampUs: TimestampUs): void {
    const firstOffset = this.spans.firstOffset(j);
    const to = Math.min(this.endOffset, this.spans.endOffset(j));
    assert(walk.eventCount === this.spans.endOffset(j) - firstOffset, 'an append holds its span');
    const bytes = walk.body;
    let position = walk.eventsStart;
    for (let offset = firstOffset; offset < to; offset++) {
      const sizeBytes = u32(bytes, position);
      const start = position + 4;
      position = start + sizeBytes;
      if (offset < this.fromOffset) continue;
      if (this.events.length > 0 && this.sizeBytes + sizeBytes > constants.readSizeBytesMax) {
        this.full = true;
        return;
      }
      this.sizeBytes += sizeBytes;
      this.events.push({
        offset: asOffset(offset),
        timestampUs,
        data: bytes.subarray(start, position),
      });
    }
    assert(position <= walk.bodyEnd, 'events lie inside their append');
  }
}

// The stream index: the first derived view (view.ts). It maps (stream, offset) to the place of the
// event in the journal — the op of its prepare, the request's position in the batch, and the
// event's position in the request — so stream reads find their bytes: locate() finds one event,
// appendsIn() the appends of a range of offsets (one search, then a walk). It is fed every
// committed op (apply) and records the kernel's events_appended effects of the requests that
// applied; at start-up the replica replays the journal and the index is rebuilt from those same
// effects. One entry per append command (not per event). Its name, `stream_index`, labels its
// projection metrics; digest() hashes its entries (canonical encoding below), so a rebuilt index
// can be compared with the live one.
//
// Entries live in typed-array columns, in chunks. A stream's first chunk starts small and doubles
// up to chunkEntryCountMax; after that each full chunk stays as it is and a new one is added. Why
// not plain growable arrays: a JavaScript array of tens of thousands of numbers is one large
// object in V8's old generation, and every time it grows it is copied and the old copy is
// garbage there, which only a mark-compact reclaims (a heap snapshot diff under load found such
// copies dying: docs/performance.md, "Figures behind the code"). Typed arrays keep the numbers
// outside the JavaScript heap, a full chunk is never copied again, and the collector never
// scans their contents.
//
// Invariants: within a stream, entries are in offset order and chunks hold consecutive entries;
// every chunk but the last is full; firstOffsets strictly increase across the whole stream;
// appliedOp only moves by one, in apply().
//
// Digest encoding (little-endian): "kimberlite-ts/stream-index-digest/v1" ‖ u64 streamCount ‖
// per stream in id order: u64 streamId ‖ u64 nextOffset ‖ u64 entryCount ‖ per entry in offset
// order: u64 firstOffset ‖ u64 op ‖ u32 requestIndex. It is hashed in chunks of
// digestChunkSizeBytes, each chained to the digest of the ones before (running = SHA-256(running ‖
// chunk), starting from SHA-256 of the domain string), so the whole encoding is never held in
// memory at once. The applied position is not part of the content: positions are reported beside
// the digest.

import { assert } from '../core/assert.js';
import { Writer } from '../core/binary.js';
import { sha256, sha256Parts } from '../core/checksum.js';
import type { Offset, Op, StreamId } from '../core/types.js';
import type { CommittedOp, View } from './view.js';

/** Entries in a chunk once it has grown to full size (20 bytes each: 320 KiB). */
export const chunkEntryCountMax = 16 * 1024;
/** Entries a stream's first chunk holds at first. */
const chunkEntryCountMin = 8;
/** The bytes of encoding hashed per step of digest(). */
const digestChunkSizeBytes = 64 * 1024;
const digestDomain = 'kimberlite-ts/stream-index-digest/v1';

class Chunk {
  count = 0;
  firstOffsets: Float64Array;
  ops: Float64Array;
  requestIndexes: Uint32Array;

  constructor(capacity: number) {
    this.firstOffsets = new Float64Array(capacity);
    this.ops = new Float64Array(capacity);
    this.requestIndexes = new Uint32Array(capacity);
  }

  get capacity(): number {
    return this.ops.length;
  }

  /** Doubles the capacity (never past chunkEntryCountMax), keeping the entries. */
  grow(): void {
    const capacity = Math.min(chunkEntryCountMax, this.capacity * 2);
    assert(capacity > this.capacity, 'only a chunk below full size grows');
    const firstOffsets = new Float64Array(capacity);
    const ops = new Float64Array(capacity);
    const requestIndexes = new Uint32Array(capacity);
    firstOffsets.set(this.firstOffsets);
    ops.set(this.ops);
    requestIndexes.set(this.requestIndexes);
    this.firstOffsets = firstOffsets;
    this.ops = ops;
    this.requestIndexes = requestIndexes;
  }
}

interface StreamAppends {
  readonly chunks: Chunk[];
  nextOffset: number;
}

/**
 * The appends holding a range of a stream's events (StreamIndex.appendsIn fills them): append i
 * holds the events [firstOffset(i), endOffset(i)) and is request requestIndex(i) of op op(i).
 * One typed array, four numbers per append: a read of ten thousand one-event appends puts one
 * array on the heap rather than ten thousand objects (see the GC note above), and one allocation
 * rather than one per column (a typed array's backing store costs about a microsecond to make).
 */
export class AppendSpans {
  count = 0;
  /** Append i is entries [4i, 4i + 4): first offset, end offset, op, request index. */
  private readonly entries: Float64Array;

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 0, 'a span capacity');
    this.entries = new Float64Array(capacity * 4);
  }

  firstOffset(i: number): number {
    return this.entries[4 * i]!;
  }

  endOffset(i: number): number {
    return this.entries[4 * i + 1]!;
  }

  op(i: number): Op {
    return this.entries[4 * i + 2]! as Op;
  }

  requestIndex(i: number): number {
    return this.entries[4 * i + 3]!;
  }

  /** Sets append i (StreamIndex.appendsIn). */
  set(i: number, firstOffset: number, endOffset: number, op: number, requestIndex: number): void {
    assert(i < this.capacity, 'an append within the capacity');
    this.entries[4 * i] = firstOffset;
    this.entries[4 * i + 1] = endOffset;
    this.entries[4 * i + 2] = op;
    this.entries[4 * i + 3] = requestIndex;
  }
}

export interface EventLocation {
  readonly op: Op;
  readonly requestIndex: number;
  readonly eventIndex: number;
}

export class StreamIndex implements View {
  readonly name = 'stream_index';
  private readonly streams = new Map<StreamId, StreamAppends>();
  private appliedOpValue = 0;

  get appliedOp(): number {
    return this.appliedOpValue;
  }

  /** Records every events_appended effect of the op's applied commands, in batch order. */
  apply(op: CommittedOp): void {
    assert(op.op === this.appliedOpValue + 1, 'a view is fed the op after its position');
    for (const command of op.applied) {
      if (command.output === null) continue;
      for (const effect of command.output.effects) {
        if (effect.kind !== 'events_appended') continue;
        assert(effect.op === op.op, 'an append effect names the op it was applied in');
        assert(effect.requestIndex === command.requestIndex, 'and its request');
        this.recordAppend(
          effect.streamId,
          effect.firstOffset,
          effect.count,
          effect.op,
          effect.requestIndex,
        );
      }
    }
    this.appliedOpValue = op.op;
  }

  reset(): void {
    this.streams.clear();
    this.appliedOpValue = 0;
  }

  digest(): Uint8Array {
    let running = sha256(new TextEncoder().encode(digestDomain));
    const writer = new Writer(digestChunkSizeBytes * 2);
    const flush = (): void => {
      running = sha256Parts([running, writer.bytesView()]);
      writer.reset();
    };
    writer.u64(this.streams.size);
    const ids = [...this.streams.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const appends = this.streams.get(id)!;
      const entryCount = appends.chunks.reduce((sum, chunk) => sum + chunk.count, 0);
      writer.u64(id).u64(appends.nextOffset).u64(entryCount);
      for (const chunk of appends.chunks) {
        for (let entry = 0; entry < chunk.count; entry++) {
          writer.u64(chunk.firstOffsets[entry]!).u64(chunk.ops[entry]!);
          writer.u32(chunk.requestIndexes[entry]!);
          if (writer.length >= digestChunkSizeBytes) flush();
        }
      }
    }
    flush();
    return running;
  }

  /** One append command's events (apply() calls it; the model tests call it directly). */
  recordAppend(
    streamId: StreamId,
    firstOffset: Offset,
    count: number,
    op: Op,
    requestIndex: number,
  ): void {
    let appends = this.streams.get(streamId);
    if (appends === undefined) {
      appends = { chunks: [new Chunk(chunkEntryCountMin)], nextOffset: 0 };
      this.streams.set(streamId, appends);
    }
    assert(firstOffset === appends.nextOffset, 'appends are indexed in offset order');
    assert(count > 0, 'an append has events');
    assert(Number.isInteger(requestIndex) && requestIndex >= 0, 'a request index');
    let chunk = appends.chunks[appends.chunks.length - 1]!;
    if (chunk.count === chunk.capacity) {
      if (chunk.capacity < chunkEntryCountMax) chunk.grow();
      else {
        chunk = new Chunk(chunkEntryCountMax);
        appends.chunks.push(chunk);
      }
    }
    chunk.firstOffsets[chunk.count] = firstOffset;
    chunk.ops[chunk.count] = op;
    chunk.requestIndexes[chunk.count] = requestIndex;
    chunk.count += 1;
    appends.nextOffset = firstOffset + count;
  }

  nextOffset(streamId: StreamId): number {
    return this.streams.get(streamId)?.nextOffset ?? 0;
  }

  /** Where the event at `offset` lives; undefined past the end of the stream. */
  locate(streamId: StreamId, offset: number): EventLocation | undefined {
    const appends = this.streams.get(streamId);
    if (appends === undefined || offset >= appends.nextOffset || offset < 0) return undefined;
    const chunk = appends.chunks[lastAtOrBefore(appends.chunks, offset)]!;
    const entry = lastEntryAtOrBefore(chunk, offset);
    const first = chunk.firstOffsets[entry]!;
    assert(first <= offset, 'located append starts at or before the offset');
    return {
      op: chunk.ops[entry]! as Op,
      requestIndex: chunk.requestIndexes[entry]!,
      eventIndex: offset - first,
    };
  }

  /**
   * Fills `spans` with the appends holding the events [fromOffset, toOffset) of the stream, in
   * offset order: the first is the one holding fromOffset, the last the one holding toOffset - 1
   * (each keeps its whole extent; the caller clips). One search, then a walk: a reader of many
   * events pays per append, not a search per event. None when the range is empty or past the
   * end. `spans` must hold toOffset - fromOffset appends (each holds at least one event).
   */
  appendsIn(streamId: StreamId, fromOffset: number, toOffset: number, spans: AppendSpans): void {
    spans.count = 0;
    const appends = this.streams.get(streamId);
    if (appends === undefined || fromOffset < 0) return;
    const end = Math.min(toOffset, appends.nextOffset);
    if (fromOffset >= end) return;
    assert(spans.capacity >= end - fromOffset, 'room for an append per event');
    const chunks = appends.chunks;
    let chunkIndex = lastAtOrBefore(chunks, fromOffset);
    let entry = lastEntryAtOrBefore(chunks[chunkIndex]!, fromOffset);
    let count = 0;
    for (;;) {
      const chunk = chunks[chunkIndex]!;
      let endOffset = appends.nextOffset;
      if (entry + 1 < chunk.count) endOffset = chunk.firstOffsets[entry + 1]!;
      else if (chunkIndex + 1 < chunks.length) endOffset = chunks[chunkIndex + 1]!.firstOffsets[0]!;
      const firstOffset = chunk.firstOffsets[entry]!;
      spans.set(count, firstOffset, endOffset, chunk.ops[entry]!, chunk.requestIndexes[entry]!);
      count += 1;
      if (endOffset >= end) break;
      entry += 1;
      if (entry === chunk.count) {
        chunkIndex += 1;
        entry = 0;
      }
    }
    spans.count = count;
  }
}

/** The index of the last chunk whose first entry starts at or before `offset`. */
function lastAtOrBefore(chunks: readonly Chunk[], offset: number): number {
  let low = 0;
  let high = chunks.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if (chunks[middle]!.firstOffsets[0]! <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

/** The index of the chunk's last entry that starts at or before `offset`. */
function lastEntryAtOrBefore(chunk: Chunk, offset: number): number {
  assert(chunk.count > 0, 'a located chunk has entries');
  let low = 0;
  let high = chunk.count - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if (chunk.firstOffsets[middle]! <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

// The read index: derived state that maps (stream, offset) to the place of the event in the
// journal — the op of its prepare, the request's position in the batch, and the event's position
// in the request. It is rebuilt from the kernel's events_appended effects while the journal is
// replayed at start-up, and extended at every commit. One entry per append command (not per
// event), stored in parallel number arrays so that millions of events cost little memory.

import { assert } from '../core/assert.js';
import type { Offset, Op, StreamId } from '../core/types.js';

interface StreamAppends {
  readonly firstOffsets: number[];
  readonly ops: number[];
  readonly requestIndexes: number[];
  nextOffset: number;
}

export interface EventLocation {
  readonly op: Op;
  readonly requestIndex: number;
  readonly eventIndex: number;
}

export class StreamIndex {
  private readonly streams = new Map<StreamId, StreamAppends>();

  recordAppend(
    streamId: StreamId,
    firstOffset: Offset,
    count: number,
    op: Op,
    requestIndex: number,
  ): void {
    let appends = this.streams.get(streamId);
    if (appends === undefined) {
      appends = { firstOffsets: [], ops: [], requestIndexes: [], nextOffset: 0 };
      this.streams.set(streamId, appends);
    }
    assert(firstOffset === appends.nextOffset, 'appends are indexed in offset order');
    assert(count > 0, 'an append has events');
    appends.firstOffsets.push(firstOffset);
    appends.ops.push(op);
    appends.requestIndexes.push(requestIndex);
    appends.nextOffset = firstOffset + count;
  }

  nextOffset(streamId: StreamId): number {
    return this.streams.get(streamId)?.nextOffset ?? 0;
  }

  /** Where the event at `offset` lives; undefined past the end of the stream. */
  locate(streamId: StreamId, offset: number): EventLocation | undefined {
    const appends = this.streams.get(streamId);
    if (appends === undefined || offset >= appends.nextOffset) return undefined;
    const { firstOffsets } = appends;
    let low = 0;
    let high = firstOffsets.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if ((firstOffsets[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    const first = firstOffsets[low];
    const op = appends.ops[low];
    const requestIndex = appends.requestIndexes[low];
    assert(first !== undefined && op !== undefined && requestIndex !== undefined, 'index entry');
    assert(first <= offset, 'located append starts at or before the offset');
    return { op: op as Op, requestIndex, eventIndex: offset - first };
  }
}

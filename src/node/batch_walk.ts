// Walks an encoded batch (a prepare's body) forward to the append commands a stream read needs,
// and finds each one's events, without decoding anything else. decodeBatch() makes an object, a
// client-id string and a view for every request, and decodeCommand() the audit strings and an
// object per command: a read of one stream's events out of batches of many uses none of them, and
// on a cold read of one-event appends they were most of the work per event.
//
// The layouts walked (both journal format, changed only with a format version bump):
//   - a batch (vsr/batch.ts): u32 count, then per request a 16-byte client id, u64 request number,
//     u8 operation, u32 body length and the body;
//   - an append command (kernel/command.ts): u8 tag (3), the audit (actor and reason, each a u32
//     length and UTF-8 bytes; u8 0 or 1, then the correlation id as a string when 1), u64 tenant
//     id, u64 stream id, u64 expected offset, u32 event count, then the events (EncodedEvents:
//     each a u32 length and its bytes).
// Property tests hold this walk to decodeBatch() and decodeCommand() over random batches and
// commands, so a change to either layout fails them.
//
// Invariants: the walk only moves forward (a stream's requests in one prepare are in batch order);
// it reads only bytes whose checksums were verified (the prepare came from the journal or from
// this replica's own pipeline) and that the kernel applied, so a field running past its body is a
// programmer error, asserted.

import { assert } from '../core/assert.js';
import { requestOverheadBytes } from '../vsr/batch.js';

/** Bytes of a request before its body's u32 length: client id, request number, operation. */
const requestHeadBytes = requestOverheadBytes - 4;
/** The tag of an append command (kernel/command.ts). */
const appendTag = 3;
/** Bytes between the audit and the event count: tenant id, stream id, expected offset. */
const appendIdsBytes = 8 + 8 + 8;

export class BatchWalk {
  private readonly count: number;
  /** The request the walk stands at, and where its encoding starts. */
  private index = 0;
  private position = 4;
  /** The body of the request last walked to: body[bodyStart, bodyEnd). */
  bodyStart = 0;
  bodyEnd = 0;
  /** For toAppend(): the append's stream, event count and first event field. */
  streamId = 0;
  eventCount = 0;
  eventsStart = 0;

  constructor(readonly body: Uint8Array) {
    assert(body.length >= 4, 'a batch starts with its count');
    this.count = u32(body, 0);
  }

  /** Moves to request `requestIndex` (at or after the last one walked to) and finds its body. */
  to(requestIndex: number): void {
    assert(requestIndex >= this.index && requestIndex < this.count, 'the walk moves forward');
    while (this.index < requestIndex) {
      this.position += requestOverheadBytes + u32(this.body, this.position + requestHeadBytes);
      this.index += 1;
    }
    this.bodyStart = this.position + requestOverheadBytes;
    this.bodyEnd = this.bodyStart + u32(this.body, this.position + requestHeadBytes);
    assert(this.bodyEnd <= this.body.length, 'a request body lies inside its batch');
  }

  /** to(requestIndex), for a request that is an append: finds its stream and its events. */
  toAppend(requestIndex: number): void {
    this.to(requestIndex);
    const bytes = this.body;
    let position = this.bodyStart;
    assert(bytes[position] === appendTag, 'the request is an append');
    position += 1;
    position += 4 + u32(bytes, position); // actor
    position += 4 + u32(bytes, position); // reason
    const correlated = bytes[position];
    assert(correlated === 0 || correlated === 1, 'the correlation id is present or not');
    position += 1;
    if (correlated === 1) position += 4 + u32(bytes, position);
    this.streamId = u32(bytes, position + 8) + u32(bytes, position + 12) * 0x1_0000_0000;
    position += appendIdsBytes;
    this.eventCount = u32(bytes, position);
    this.eventsStart = position + 4;
    assert(this.eventsStart <= this.bodyEnd, 'an append lies inside its body');
  }
}

/** The little-endian u32 at bytes[position, position + 4) (the layouts' lengths and count). */
export function u32(bytes: Uint8Array, position: number): number {
  assert(position + 4 <= bytes.length, 'a length field lies inside its bytes');
  return (
    (bytes[position]! |
      (bytes[position + 1]! << 8) |
      (bytes[position + 2]! << 16) |
      (bytes[position + 3]! << 24)) >>>
    0
  );
}

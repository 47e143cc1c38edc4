// The per-stream SHA-256 hash chain (DESIGN.md §5): every event of a stream is linked to the one
// before it, so one stream can be exported and verified on its own, offline, with any SHA-256
// tool. This definition is part of the data format: change it only with a version bump.
//
// Definition (all integers little-endian, ‖ is concatenation, SHA-256 per FIPS 180-4):
//
//   genesis(tenantId, streamId) =
//     SHA-256( "kimberlite-ts/stream-chain/v1" (29 bytes of ASCII, no terminator)
//              ‖ u64 tenantId ‖ u64 streamId )                          -- 45 bytes hashed
//
//   link(previous, offset, timestampUs, data) =
//     SHA-256( previous (32 bytes)
//              ‖ u64 offset            -- the event's offset in its stream, from 0
//              ‖ u64 timestampUs       -- the commit timestamp of the event's prepare
//              ‖ u32 length(data)      -- byte length of the event's data
//              ‖ data )                                                  -- 52 + length bytes
//
//   link_0 = link(genesis, 0, t_0, data_0);  link_i = link(link_{i-1}, i, t_i, data_i)
//   chainHead = link of the stream's last event (genesis while the stream is empty).
//
// Example with Python's hashlib: sha256(prev + struct.pack('<QQI', off, ts, len(d)) + d).
//
// Invariants: links are always 32 bytes; a returned link is a fresh array that nobody mutates.
// Small events are copied into one scratch buffer and hashed in one shot (cheaper than an
// incremental hasher in Node); large ones are hashed in parts to avoid copying them. Each
// link's digest is written over the first 32 bytes of the scratch buffer, where the next link's
// "previous" belongs, so advancing a chain allocates no array per event (only the head it
// returns is new). Events still inside their encoded command (EncodedEvents) are copied into the
// scratch buffer from there, so they need no view either; the one allocation per event left is
// the digest node:crypto hands back (a 32-character string, see checksum.ts).

import { assert } from '../core/assert.js';
import { sha256, sha256Into, sha256PartsInto, sha256SizeBytes } from '../core/checksum.js';
import type { Offset, StreamId, TenantId, TimestampUs } from '../core/types.js';
import { isEncodedEvents, readEventSize } from './command.js';
import type { AppendEvents } from './command.js';

export const chainDomain = 'kimberlite-ts/stream-chain/v1';
/** Bytes hashed before the event's data: previous ‖ u64 offset ‖ u64 timestamp ‖ u32 length. */
export const linkPrefixSizeBytes = sha256SizeBytes + 8 + 8 + 4;

const domainBytes = new TextEncoder().encode(chainDomain);
const genesisSizeBytes = domainBytes.length + 8 + 8;
const scratchDataSizeBytesMax = 4096;
const scratch = new Uint8Array(linkPrefixSizeBytes + scratchDataSizeBytesMax);
const scratchView = new DataView(scratch.buffer);

/**
 * scratch[0, sizeBytes), one view per size made once and kept: events of an application are
 * mostly of a few sizes, and a view per link was a per-event allocation (at most one view per
 * size up to the scratch's, about 4 K views).
 */
const scratchSlices: Array<Uint8Array | undefined> = [];

function scratchBytes(sizeBytes: number): Uint8Array {
  let slice = scratchSlices[sizeBytes];
  if (slice === undefined) {
    slice = scratch.subarray(0, sizeBytes);
    scratchSlices[sizeBytes] = slice;
  }
  return slice;
}

function setU64(view: DataView, position: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 must be a non-negative safe integer');
  view.setUint32(position, value % 0x1_0000_0000, true);
  view.setUint32(position + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** The link before a stream's first event: a hash of the domain string and the stream's ids. */
export function streamGenesis(tenantId: TenantId, streamId: StreamId): Uint8Array {
  const bytes = new Uint8Array(genesisSizeBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(domainBytes, 0);
  setU64(view, domainBytes.length, tenantId);
  setU64(view, domainBytes.length + 8, streamId);
  return sha256(bytes);
}

/** Makes scratch[0, 32) the starting link. */
function startFrom(previous: Uint8Array): void {
  assert(previous.length === sha256SizeBytes, 'previous link must be 32 bytes');
  scratch.set(previous, 0);
}

/**
 * Replaces the link in scratch[0, 32) with the link of the next event, whose data is
 * source[start, start + sizeBytes).
 */
function linkInPlace(
  offset: number,
  timestampUs: number,
  source: Uint8Array,
  start: number,
  sizeBytes: number,
): void {
  assert(sizeBytes <= 0xffff_ffff, 'event data length must fit in u32');
  assert(start >= 0 && start + sizeBytes <= source.length, 'event data lies within its source');
  setU64(scratchView, sha256SizeBytes, offset);
  setU64(scratchView, sha256SizeBytes + 8, timestampUs);
  scratchView.setUint32(sha256SizeBytes + 16, sizeBytes, true);
  const whole = start === 0 && sizeBytes === source.length;
  if (sizeBytes <= scratchDataSizeBytesMax) {
    if (whole) scratch.set(source, linkPrefixSizeBytes);
    else {
      for (let index = 0; index < sizeBytes; index++) {
        scratch[linkPrefixSizeBytes + index] = source[start + index]!;
      }
    }
    sha256Into(scratchBytes(linkPrefixSizeBytes + sizeBytes), scratch, 0);
  } else {
    // Large events are rare and hashed in parts; one view for such an event costs little.
    const data = whole ? source : source.subarray(start, start + sizeBytes);
    sha256PartsInto([scratchBytes(linkPrefixSizeBytes), data], scratch, 0);
  }
}

/** The link of one event, given the link before it (see the definition at the top). */
export function eventLink(
  previous: Uint8Array,
  offset: Offset,
  timestampUs: TimestampUs,
  data: Uint8Array,
): Uint8Array {
  startFrom(previous);
  linkInPlace(offset, timestampUs, data, 0, data.length);
  return scratch.slice(0, sha256SizeBytes);
}

/** Advances a chain over events that take consecutive offsets from firstOffset. */
export function chainAppend(
  previous: Uint8Array,
  firstOffset: Offset,
  timestampUs: TimestampUs,
  events: AppendEvents,
): Uint8Array {
  startFrom(previous);
  if (!isEncodedEvents(events)) {
    for (let index = 0; index < events.length; index++) {
      const data = events[index]!;
      linkInPlace(firstOffset + index, timestampUs, data, 0, data.length);
    }
    return scratch.slice(0, sha256SizeBytes);
  }
  const { bytes, count } = events;
  let position = events.start;
  for (let index = 0; index < count; index++) {
    const sizeBytes = readEventSize(bytes, position);
    linkInPlace(firstOffset + index, timestampUs, bytes, position + 4, sizeBytes);
    position += 4 + sizeBytes;
  }
  assert(position === events.end, 'the encoded events end where the decoder found them to');
  return scratch.slice(0, sha256SizeBytes);
}

// Appending events to a stream (DESIGN.md §5). Each event of an append takes the stream's next
// offset, the prepare's timestamp, and a link in the stream's SHA-256 chain (chain.ts). The
// events themselves are not copied into the State: they live in the journal, and the node finds
// them through the events_appended effect ((stream, offset) → (op, requestIndex, event index)).
//
// append checks, in this order (the first failure is the result):
//   audit → invalid_argument; no events → invalid_argument;
//   more than appendEventCountMax events, or an event over eventSizeBytesMax → limit_exceeded;
//   unknown tenant → tenant_not_found; sealed tenant → tenant_sealed;
//   unknown stream, or a stream of another tenant → stream_not_found (the same answer, so that
//   nothing leaks across tenants); expectedOffset given and ≠ nextOffset → offset_mismatch.
// Only then does it mutate the stream: nextOffset += count and chainHead advances.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { asOffset } from '../core/types.js';
import { chainAppend } from './chain.js';
import { isEncodedEvents, readEventSize } from './command.js';
import type { AppendEvents, ApplicableCommand } from './command.js';
import { errorResult, rejected } from './outcome.js';
import type { ApplyOutcome, CommandMeta, ErrorResult } from './outcome.js';
import type { State } from './state.js';
import { checkAudit } from './validate.js';

type Append = Extract<ApplicableCommand, { kind: 'append' }>;

function eventCount(events: AppendEvents): number {
  return isEncodedEvents(events) ? events.count : events.length;
}

/** The index and size of the first event over eventSizeBytesMax, or null. */
function oversizedEvent(events: AppendEvents): { index: number; sizeBytes: number } | null {
  const max = constants.eventSizeBytesMax;
  if (!isEncodedEvents(events)) {
    const index = events.findIndex((event) => event.length > max);
    return index < 0 ? null : { index, sizeBytes: events[index]!.length };
  }
  let position = events.start;
  for (let index = 0; index < events.count; index++) {
    const sizeBytes = readEventSize(events.bytes, position);
    if (sizeBytes > max) return { index, sizeBytes };
    position += 4 + sizeBytes;
  }
  return null;
}

function checkEvents(events: AppendEvents): ErrorResult | null {
  const count = eventCount(events);
  if (count === 0) {
    return errorResult('invalid_argument', 'an append needs at least one event');
  }
  if (count > constants.appendEventCountMax) {
    const max = constants.appendEventCountMax;
    return errorResult('limit_exceeded', `${count} events exceed the maximum of ${max}`);
  }
  const oversized = oversizedEvent(events);
  if (oversized !== null) {
    const { index, sizeBytes } = oversized;
    const max = constants.eventSizeBytesMax;
    return errorResult('limit_exceeded', `event ${index} of ${sizeBytes} bytes exceeds ${max}`);
  }
  return null;
}

export function applyAppend(state: State, command: Append, meta: CommandMeta): ApplyOutcome {
  const invalid = checkAudit(command.audit) ?? checkEvents(command.events);
  if (invalid !== null) return rejected(invalid);
  const { tenantId, streamId, expectedOffset, events } = command;
  const tenant = state.tenants.get(tenantId);
  if (tenant === undefined) {
    return rejected(errorResult('tenant_not_found', `tenant ${tenantId} not found`));
  }
  if (tenant.sealed) {
    return rejected(errorResult('tenant_sealed', `tenant ${tenantId} is sealed`));
  }
  const stream = state.streams.get(streamId);
  if (stream === undefined || stream.tenantId !== tenantId) {
    const message = `stream ${streamId} not found in tenant ${tenantId}`;
    return rejected(errorResult('stream_not_found', message));
  }
  if (expectedOffset !== null && expectedOffset !== stream.nextOffset) {
    const message =
      `expected offset ${expectedOffset} but stream ${streamId} ` +
      `is at offset ${stream.nextOffset}`;
    return rejected(errorResult('offset_mismatch', message));
  }

  const firstOffset = stream.nextOffset;
  const count = eventCount(events);
  assert(Number.isSafeInteger(firstOffset + count), 'stream offsets stay safe integers');
  stream.chainHead = chainAppend(stream.chainHead, firstOffset, meta.timestampUs, events);
  stream.nextOffset = asOffset(firstOffset + count);
  assert(stream.nextOffset > firstOffset, 'an append moves the stream forward');

  const { op, requestIndex, timestampUs } = meta;
  return {
    result: { status: 'ok', kind: 'append', firstOffset, count, chainHead: stream.chainHead },
    effects: [
      {
        kind: 'events_appended',
        tenantId,
        streamId,
        firstOffset,
        count,
        op,
        requestIndex,
        timestampUs,
      },
    ],
  };
}

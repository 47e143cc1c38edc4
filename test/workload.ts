// A small append workload for the real-process tests, and its checker. Each worker owns one
// stream and one SDK client and appends batches of uniquely named events one after another,
// recording for every attempt whether it was acknowledged (with the offset the server gave it)
// or its outcome is unknown (the call failed with a connection loss or a timeout: the append may
// or may not have been applied). The checker then compares a stream as read back with that
// record: every acknowledged batch present at its acknowledged offset, in order, all events of a
// batch together; nothing else except whole batches whose outcome was unknown; nothing twice.

import { KmbError, errorCodes } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';

export interface Attempt {
  readonly events: readonly string[];
  /** 'acked' with its first offset, or 'unknown'. */
  outcome: { kind: 'pending' } | { kind: 'acked'; firstOffset: number } | { kind: 'unknown' };
}

/** What one worker did. */
export interface WorkerRecord {
  readonly worker: number;
  readonly tenantId: number;
  readonly streamId: number;
  readonly attempts: Attempt[];
  /** Failures that are neither an acknowledgement nor an unknown outcome. */
  readonly unexpected: string[];
}

/** Codes that leave an append's outcome unknown to the client. */
const unknownOutcomeCodes: ReadonlySet<string> = new Set([
  errorCodes.timeout,
  errorCodes.connection_lost,
]);

export function ackedCount(record: WorkerRecord): number {
  return record.attempts.filter((attempt) => attempt.outcome.kind === 'acked').length;
}

/**
 * Appends batches of 1..3 events until `shouldStop()` is true (checked between appends), one
 * append at a time; `onAck` is called after each acknowledgement.
 */
export async function runWorker(
  client: Client,
  record: WorkerRecord,
  shouldStop: () => boolean,
  onAck: () => void = () => undefined,
): Promise<void> {
  for (let sequence = 0; !shouldStop(); sequence++) {
    const batchSize = 1 + (sequence % 3);
    const events = Array.from(
      { length: batchSize },
      (_, index) => `w${record.worker}-${sequence}-${index}`,
    );
    const attempt: Attempt = { events, outcome: { kind: 'pending' } };
    record.attempts.push(attempt);
    try {
      const result = await client.append({
        tenantId: record.tenantId,
        streamId: record.streamId,
        events,
      });
      if (result.count !== events.length) {
        record.unexpected.push(`append of ${events.length} events answered count ${result.count}`);
      }
      attempt.outcome = { kind: 'acked', firstOffset: result.firstOffset };
      onAck();
    } catch (error) {
      attempt.outcome = { kind: 'unknown' };
      if (!(error instanceof KmbError) || !unknownOutcomeCodes.has(error.code)) {
        const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        record.unexpected.push(`append ${events.join(',')} failed: ${text}`);
      }
    }
  }
}

/**
 * Checks a stream's events (as text, in offset order from 0) against a worker's record; returns
 * the problems found (none means the history is as it must be).
 */
export function checkStream(record: WorkerRecord, events: readonly string[]): string[] {
  const problems: string[] = [];
  let position = 0;
  for (const attempt of record.attempts) {
    const here = events.slice(position, position + attempt.events.length);
    const present =
      here.length === attempt.events.length && here.every((e, i) => e === attempt.events[i]);
    const label = `worker ${record.worker} batch [${attempt.events.join(',')}]`;
    if (attempt.outcome.kind === 'acked') {
      if (!present) {
        problems.push(
          `${label} acked at offset ${attempt.outcome.firstOffset} is missing at ${position}`,
        );
        // Resynchronise on the acknowledged offset so that one loss is not reported many times.
        position = attempt.outcome.firstOffset + attempt.events.length;
        continue;
      }
      if (attempt.outcome.firstOffset !== position) {
        problems.push(
          `${label} acknowledged at offset ${attempt.outcome.firstOffset}, found at ${position}`,
        );
      }
      position += attempt.events.length;
    } else if (present) {
      position += attempt.events.length;
    } else if (attempt.outcome.kind === 'pending') {
      problems.push(`${label} never finished`);
    }
  }
  if (position < events.length) {
    problems.push(
      `worker ${record.worker}: unexpected events from offset ${position}: ` +
        events.slice(position, position + 5).join(','),
    );
  }
  return problems;
}

// The request timeline: a benchmark-only recorder of when each step of a write happened in this
// process (a client request arriving, a journal write starting and becoming durable, a prepare
// or prepare_ok leaving or arriving, a reply leaving). bench/timeline.ts starts a cluster with
// KMB_TIMELINE=<path prefix>, sends one request at a time, and lines the marks of every replica
// up with its own (docs/performance.md, "One request in flight"). Times are wall-clock
// milliseconds with microsecond resolution (performance.timeOrigin + performance.now()), so the
// marks of processes on one machine share a clock.
//
// Off unless KMB_TIMELINE is set: every mark site is behind the one `timelineOn` constant, so a
// production process pays one branch. Bounded: at most timelineMarkCountMax marks are kept (the
// oldest are kept; later ones are counted as dropped). Written once, at graceful stop.

import { writeFile } from 'node:fs/promises';

const timelinePath = process.env['KMB_TIMELINE'] ?? '';
/** Whether this process records its timeline (KMB_TIMELINE is set). */
export const timelineOn = timelinePath !== '';

/** Marks kept; a benchmark run of a few thousand requests makes ~10 per request per replica. */
export const timelineMarkCountMax = 1_000_000;

export type TimelineMark =
  | 'request_in'
  | 'request_submitted'
  | 'append_start'
  | 'append_durable'
  | 'send_prepare'
  | 'send_prepare_ok'
  | 'send_commit'
  | 'prepare_in'
  | 'prepare_ok_in'
  | 'reply_out';

interface Mark {
  readonly atMs: number;
  readonly name: TimelineMark;
  readonly op: number;
  readonly peer: number;
}

const marks: Mark[] = [];
let droppedCount = 0;

/** Records a step (only while timelineOn; call sites check it first). */
export function mark(name: TimelineMark, op: number, peer = -1): void {
  if (marks.length >= timelineMarkCountMax) {
    droppedCount += 1;
    return;
  }
  marks.push({ atMs: performance.timeOrigin + performance.now(), name, op, peer });
}

/** Writes this process's marks to `<KMB_TIMELINE>-<nodeId>.json` (no-op when off). */
export async function writeTimeline(nodeId: number): Promise<void> {
  if (!timelineOn) return;
  const body = JSON.stringify({ nodeId, droppedCount, marks });
  await writeFile(`${timelinePath}-${nodeId}.json`, body);
}

// The most recent log lines of this process, kept in memory for GET /debug/logs and the
// `kimberlite-admin diagnostics` bundle (spec 002 "Collect Diagnostic Bundle": recent logs),
// so an operator gets them even when stdout went to a terminal or a pipe nobody kept.
//
// Only the root logger's default destination (process stdout, i.e. a real server) feeds it:
// loggers given their own destination (tests, tools) do not. Bounded: a fixed ring of
// recentLogLimits.lineCountMax lines, each cut to lineSizeBytesMax characters, oldest dropped.

import type { LogDestination } from './logger.js';

export const recentLogLimits = {
  lineCountMax: 1000,
  /** Longer lines are cut (and marked) so the ring stays within ~8 MiB. */
  lineSizeBytesMax: 8 * 1024,
} as const;

export class RecentLogLines {
  private readonly ring: string[] = [];
  private next = 0;

  push(line: string): void {
    const { lineCountMax, lineSizeBytesMax } = recentLogLimits;
    const text = line.endsWith('\n') ? line : `${line}\n`;
    const kept = text.length > lineSizeBytesMax ? `${text.slice(0, lineSizeBytesMax)}…\n` : text;
    if (this.ring.length < lineCountMax) this.ring.push(kept);
    else this.ring[this.next] = kept;
    this.next = (this.next + 1) % lineCountMax;
  }

  /** The newest `countMax` lines (all kept when omitted), oldest first. */
  lines(countMax: number = recentLogLimits.lineCountMax): string[] {
    const ordered =
      this.ring.length < recentLogLimits.lineCountMax
        ? this.ring.slice()
        : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return countMax >= ordered.length ? ordered : ordered.slice(ordered.length - countMax);
  }
}

/** The process's recent lines. */
export const recentLogLines = new RecentLogLines();

/** A destination that keeps each line in recentLogLines, then writes it on. */
export function recentLogTee(destination: LogDestination): LogDestination {
  return {
    write(line: string): unknown {
      recentLogLines.push(line);
      return destination.write(line);
    },
  };
}

/** The answer to GET /debug/logs[?lines=N]: the newest lines as text, or 400. */
export function recentLogReply(query: URLSearchParams): {
  statusCode: number;
  contentType: string;
  body: string;
} {
  const text = query.get('lines');
  const countMax = text === null ? recentLogLimits.lineCountMax : Number(text);
  if (!/^\d{1,6}$/.test(text ?? '0') || countMax < 1 || countMax > recentLogLimits.lineCountMax) {
    const message = `lines must be a whole number in 1..${recentLogLimits.lineCountMax}`;
    const body = JSON.stringify({ error: { code: 'KMB_ERR_INVALID_ARGUMENT', message } });
    return { statusCode: 400, contentType: 'application/json; charset=utf-8', body };
  }
  const body = recentLogLines.lines(countMax).join('');
  return { statusCode: 200, contentType: 'text/plain; charset=utf-8', body };
}

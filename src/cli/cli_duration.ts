// Durations as operators type them in `--since 10m`: a number and a unit, or several in a row
// from the largest unit down ("1h30m"). Units: ms, s, m, h, d. Anything else is a usage error
// that says what is accepted.

const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof unitMs;

/** The longest duration accepted: 366 days, far beyond what any node remembers. */
export const durationMsMax = 366 * unitMs.d;

const accepted = 'a duration such as 30s, 10m, 2h, 1d or 1h30m (units ms, s, m, h, d)';

/** Parses a duration; throws an Error saying what is accepted when the text is not one. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(trimmed)) {
    throw new Error(`${JSON.stringify(text)} is not ${accepted}`);
  }
  let totalMs = 0;
  for (const part of trimmed.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    totalMs += Number(part[1]) * unitMs[part[2] as Unit];
  }
  if (!Number.isSafeInteger(totalMs) || totalMs > durationMsMax) {
    throw new Error(`${JSON.stringify(text)} is longer than 366 days`);
  }
  return totalMs;
}

/** A duration in the largest units that express it exactly, e.g. 90000 -> "1m30s". */
export function formatDuration(durationMs: number): string {
  if (durationMs === 0) return '0s';
  let left = durationMs;
  let text = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const count = Math.floor(left / unitMs[unit]);
    if (count > 0) text += `${count}${unit}`;
    left -= count * unitMs[unit];
  }
  return text;
}

// Turns one log record into one line of output, in either of the two formats operators choose
// with KMB_LOG_FORMAT / RUST_LOG_FORMAT.
//
// json (the default): exactly the monitoring spec's shape, keys in this order, one object per
// line: {"timestamp":"…Z","level":"INFO","target":"kmb_consensus","message":"…","fields":{…}}
// text: one human-readable line: `2024-01-15T10:30:00.000Z  INFO kmb_consensus: Became leader
// node_id=1 view=5`.
//
// Invariants: every line ends with exactly one "\n" and contains no other newline (messages and
// field values are escaped); a field value JSON cannot represent never throws out of here:
// bigints become numbers (or strings past 2^53), errors become {name, message, code, stack,
// cause}, and a record that still cannot be serialised (a cycle) is replaced by a note saying so.

import type { LogLevel } from './log_directives.js';

export const logFormats = ['json', 'text'] as const;
export type LogFormat = (typeof logFormats)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export const levelLabels: Readonly<Record<LogLevel, string>> = {
  error: 'ERROR',
  warn: 'WARN',
  info: 'INFO',
  debug: 'DEBUG',
  trace: 'TRACE',
};

export function isLogFormat(value: string): value is LogFormat {
  return (logFormats as readonly string[]).includes(value);
}

function replaceValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') {
    const asNumber = Number(value);
    return Number.isSafeInteger(asNumber) ? asNumber : value.toString();
  }
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      name: value.name,
      message: value.message,
      ...(code === undefined ? {} : { code }),
      ...(value.stack === undefined ? {} : { stack: value.stack }),
      ...(value.cause === undefined ? {} : { cause: value.cause }),
    };
  }
  return value;
}

/** JSON for any value, never throwing. */
export function stringifyValue(value: unknown): string {
  try {
    return JSON.stringify(value, replaceValue) ?? 'null';
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return JSON.stringify({ unserializable: why });
  }
}

/** One line in the spec's JSON shape. `targetJson` is the target already JSON-quoted. */
export function formatJsonLine(
  timestamp: string,
  level: LogLevel,
  targetJson: string,
  message: string,
  fields: LogFields,
): string {
  return (
    `{"timestamp":"${timestamp}","level":"${levelLabels[level]}","target":${targetJson},` +
    `"message":${JSON.stringify(message)},"fields":${stringifyValue(fields)}}\n`
  );
}

const bareWord = /^[^\s"=\\\p{Cc}]+$/u;
const controlCharacter = /\p{Cc}/u;

function textValue(value: unknown): string {
  if (typeof value === 'string') return bareWord.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return stringifyValue(value);
}

/** One human-readable line: timestamp, level, target, message, then key=value pairs. */
export function formatTextLine(
  timestamp: string,
  level: LogLevel,
  target: string,
  message: string,
  fields: LogFields,
): string {
  const text = controlCharacter.test(message) ? JSON.stringify(message).slice(1, -1) : message;
  let line = `${timestamp} ${levelLabels[level].padStart(5)} ${target}: ${text}`;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value !== undefined) line += ` ${key}=${textValue(value)}`;
  }
  return `${line}\n`;
}

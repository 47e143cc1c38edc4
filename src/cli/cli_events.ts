// Events as the CLI takes them in and prints them out. Input is JSON: a --data value is one
// event, or, when it is a JSON array, one event per element; on stdin (--data -) each non-blank
// line is one event (NDJSON). An event's bytes are the UTF-8 of its JSON text exactly as written
// (trimmed), never re-serialised, so large numbers and key order survive. Output renders an
// event's data as the JSON it holds when it holds JSON, else as a string, or as base64 with
// "encoding": "base64" when the bytes are not UTF-8 text.

import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { UsageError } from './cli_io.js';

const textEncoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The end (exclusive) of the JSON string that starts at `start` (a double quote). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/**
 * The source text of each element of a JSON array, given text already known to be a valid
 * JSON array. Depth is tracked outside strings; a top-level comma ends an element.
 */
export function splitJsonArray(arrayText: string): string[] {
  const text = arrayText.trim();
  const elements: string[] = [];
  let depth = 0;
  let start = 1;
  for (let i = 1; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      i = stringEnd(text, i) - 1;
    } else if (char === '[' || char === '{') {
      depth += 1;
    } else if ((char === ']' || char === '}') && depth > 0) {
      depth -= 1;
    } else if ((char === ',' && depth === 0) || (char === ']' && depth === 0)) {
      const element = text.slice(start, i).trim();
      if (element.length > 0) elements.push(element);
      start = i + 1;
    }
  }
  return elements;
}

/** The events of one --data value. */
export function eventsFromDataOption(value: string): Uint8Array[] {
  const text = value.trim();
  if (!isJson(text)) {
    throw new UsageError(`--data is not valid JSON: ${JSON.stringify(value.slice(0, 80))}`);
  }
  const texts = text.startsWith('[') ? splitJsonArray(text) : [text];
  if (texts.length === 0) throw new UsageError('--data is an empty array: no events to append');
  return texts.map((element) => textEncoder.encode(element));
}

/** Limits on one batch of events read from stdin; each batch is one append. */
export interface BatchLimits {
  readonly eventCountMax: number;
  /** Bytes of event data (plus 4 bytes of length each) one batch may carry. */
  readonly sizeBytesMax: number;
}

/**
 * Reads NDJSON events from a stream in batches within the limits. Blank lines are skipped; a
 * line that is not JSON stops the reading with a UsageError naming its line number.
 */
export async function* ndjsonBatches(
  input: Readable,
  limits: BatchLimits,
): AsyncGenerator<Uint8Array[], void, undefined> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let batch: Uint8Array[] = [];
  let batchSizeBytes = 0;
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber += 1;
    const text = line.trim();
    if (text.length === 0) continue;
    if (!isJson(text)) throw new UsageError(`stdin line ${lineNumber} is not valid JSON`);
    const event = textEncoder.encode(text);
    const sizeBytes = event.length + 4;
    const full =
      batch.length >= limits.eventCountMax || batchSizeBytes + sizeBytes > limits.sizeBytesMax;
    if (full && batch.length > 0) {
      yield batch;
      batch = [];
      batchSizeBytes = 0;
    }
    batch.push(event);
    batchSizeBytes += sizeBytes;
  }
  if (batch.length > 0) yield batch;
}

/** An event's data for output: its JSON text, a JSON string, or base64 of its bytes. */
export function renderData(data: Uint8Array): { json: string; base64: boolean } {
  let text: string;
  try {
    text = strictUtf8.decode(data);
  } catch {
    return { json: JSON.stringify(Buffer.from(data).toString('base64')), base64: true };
  }
  const trimmed = text.trim();
  // Line breaks in valid JSON can only be whitespace between tokens, so folding them keeps the
  // value and keeps one event per output line.
  if (trimmed.length > 0 && isJson(trimmed)) {
    return { json: trimmed.replace(/[\r\n]+/g, ' '), base64: false };
  }
  return { json: JSON.stringify(text), base64: false };
}

/** One event as a JSON line: {"offset","timestamp","data"} (+ "encoding" for binary data). */
export function eventJsonLine(event: {
  offset: number;
  timestamp: string;
  data: Uint8Array;
}): string {
  const { json, base64 } = renderData(event.data);
  const encoding = base64 ? ',"encoding":"base64"' : '';
  const head = `{"offset":${event.offset},"timestamp":${JSON.stringify(event.timestamp)}`;
  return `${head},"data":${json}${encoding}}\n`;
}

/** One event as a readable line: offset, timestamp, data. */
export function eventTextLine(event: {
  offset: number;
  timestamp: string;
  data: Uint8Array;
}): string {
  const { json, base64 } = renderData(event.data);
  const shown = base64 ? `base64:${JSON.parse(json) as string}` : json;
  return `${event.offset}  ${event.timestamp}  ${shown}\n`;
}

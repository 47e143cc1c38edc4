// Checks of the arguments of the Client's calls, made before anything is sent: a bad call fails
// with KMB_ERR_INVALID_ARGUMENT, or KMB_ERR_LIMIT_EXCEEDED for a value over the bound the
// server's admission would apply (with the server's own message), instead of costing a round
// trip or a connection. Pure functions; nothing here touches the network.

import { constants } from '../core/constants.js';
import { KmbError, kmbError } from '../core/errors.js';
import {
  eventCountLimitMessage,
  eventFieldName,
  fieldLimitMessage,
  newNameProblem,
} from '../kernel/kernel.js';
import type { NameKind } from '../kernel/kernel.js';

const textEncoder = new TextEncoder();

/** A non-negative safe integer (an id, an offset, a count). */
export function u53(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw kmbError('invalid_argument', `${what} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/** A string of at most bytesMax UTF-8 bytes. */
export function text(value: string, bytesMax: number, what: string): string {
  if (typeof value !== 'string') throw kmbError('invalid_argument', `${what} must be a string`);
  const sizeBytes = Buffer.byteLength(value, 'utf8');
  if (sizeBytes > bytesMax) {
    throw kmbError('limit_exceeded', fieldLimitMessage(what, sizeBytes, bytesMax));
  }
  return value;
}

/** A new tenant's or stream's name, refused as the server's admission would (names.ts). */
export function newName(value: string, kind: NameKind): string {
  if (typeof value !== 'string') {
    throw kmbError('invalid_argument', `${kind} name must be a string`);
  }
  const problem = newNameProblem(value, kind);
  if (problem !== null) throw new KmbError(problem.code, problem.message);
  return value;
}

/** The events of an append as bytes (strings as UTF-8), within the append's bounds. */
export function eventBytes(events: ReadonlyArray<Uint8Array | string>): Uint8Array[] {
  if (!Array.isArray(events)) throw kmbError('invalid_argument', 'events must be an array');
  if (events.length > constants.appendEventCountMax) {
    throw kmbError('limit_exceeded', eventCountLimitMessage(events.length));
  }
  return events.map((event, index) => {
    let bytes: Uint8Array;
    if (typeof event === 'string') bytes = textEncoder.encode(event);
    else if (event instanceof Uint8Array) bytes = event;
    else throw kmbError('invalid_argument', `event ${index} must be a Uint8Array or a string`);
    const max = constants.eventSizeBytesMax;
    if (bytes.length > max) {
      throw kmbError('limit_exceeded', fieldLimitMessage(eventFieldName(index), bytes.length, max));
    }
    return bytes;
  });
}

// Branded identifiers, so that an op can never be passed where a view is expected.
// All are plain numbers (safe integers) at run time except ClientId, a 128-bit id as 32 hex chars.

import { assert } from './assert.js';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Position in the replicated log. Op 0 is the root prepare; the first command is op 1. */
export type Op = Brand<number, 'Op'>;
/** A VSR view number; the primary of view v is replica v mod n. */
export type View = Brand<number, 'View'>;
/** A replica's index 0..n-1; it is the node id everywhere. */
export type ReplicaIndex = Brand<number, 'ReplicaIndex'>;
export type TenantId = Brand<number, 'TenantId'>;
export type StreamId = Brand<number, 'StreamId'>;
/** Position of an event within its stream, from 0. */
export type Offset = Brand<number, 'Offset'>;
/** A client session's 128-bit id, lower-case hex (32 characters). */
export type ClientId = Brand<string, 'ClientId'>;
/** A client's request counter: 0 is the register request, then 1, 2, 3... */
export type RequestNumber = Brand<number, 'RequestNumber'>;
/** Microseconds since the Unix epoch, as assigned by the primary in a Prepare. */
export type TimestampUs = Brand<number, 'TimestampUs'>;

function checkU53(value: number, what: string): void {
  assert(Number.isSafeInteger(value) && value >= 0, `${what} must be a non-negative safe integer`);
}

export const asOp = (value: number): Op => (checkU53(value, 'op'), value as Op);
export const asView = (value: number): View => (checkU53(value, 'view'), value as View);
export const asReplicaIndex = (value: number): ReplicaIndex => (
  checkU53(value, 'replica index'),
  value as ReplicaIndex
);
export const asTenantId = (value: number): TenantId => (
  checkU53(value, 'tenant id'),
  value as TenantId
);
export const asStreamId = (value: number): StreamId => (
  checkU53(value, 'stream id'),
  value as StreamId
);
export const asOffset = (value: number): Offset => (checkU53(value, 'offset'), value as Offset);
export const asRequestNumber = (value: number): RequestNumber => (
  checkU53(value, 'request number'),
  value as RequestNumber
);
export const asTimestampUs = (value: number): TimestampUs => (
  checkU53(value, 'timestamp'),
  value as TimestampUs
);

const clientIdPattern = /^[0-9a-f]{32}$/;
export function isClientId(value: string): value is ClientId {
  return clientIdPattern.test(value);
}
export function asClientId(value: string): ClientId {
  assert(isClientId(value), 'client id must be 32 lower-case hex characters');
  return value;
}

/** Formats microseconds since the epoch as ISO 8601 with six fractional digits. */
export function formatTimestampUs(timestampUs: number): string {
  const ms = Math.floor(timestampUs / 1000);
  const iso = new Date(ms).toISOString(); // 2024-01-15T10:30:00.123Z
  const micros = String(timestampUs % 1000).padStart(3, '0');
  return `${iso.slice(0, -1)}${micros}Z`;
}

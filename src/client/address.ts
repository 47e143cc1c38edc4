// Replica addresses as users write them: "host:port", "[v6::addr]:port", and comma-separated
// lists of those ("a:7001,b:7001"). Parsing is validation at the edge: bad input becomes a
// KmbError with KMB_ERR_INVALID_ARGUMENT, never an assertion.

import { kmbError } from '../core/errors.js';

/** A replica's network address. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

const portMax = 65_535;

/** Parses one "host:port" (IPv6 hosts in brackets). */
export function parseAddress(text: string): Address {
  const trimmed = text.trim();
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed);
  const plain = /^([^:[\]\s]+):(\d+)$/.exec(trimmed);
  const match = bracketed ?? plain;
  if (match === null) {
    throw kmbError('invalid_argument', `address ${JSON.stringify(text)} is not host:port`);
  }
  const host = match[1] ?? '';
  const port = Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > portMax) {
    throw kmbError('invalid_argument', `address ${JSON.stringify(text)} has a bad port`);
  }
  return { host, port };
}

/** Parses "a:1,b:2"; empty entries are ignored, but at least one address is required. */
export function parseAddressList(text: string): Address[] {
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  if (parts.length === 0) throw kmbError('invalid_argument', 'no cluster address given');
  return parts.map(parseAddress);
}

/** The address as the user would write it. */
export function formatAddress(address: Address): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

// Host and port as configuration spells them (`host:port`, IPv6 in brackets): parsing with a
// message that says what is wrong, formatting back, and the comparisons the configuration's
// checks need (the same endpoint spelt two ways; two listeners fighting over one port).
//
// Invariants: formatHostPort(parseHostPort(text)) names the same endpoint as text; a host is a
// name of labels (at most 253 characters), an IPv4 address, or an IPv6 address in brackets; a
// port is 0 to 65535. Nothing here throws on bad text except parseHostPort, with
// KMB_ERR_INVALID_ARGUMENT.

import { isIPv4, isIPv6 } from 'node:net';
import { kmbError } from '../core/errors.js';

export interface HostPort {
  /** A host name, an IPv4 address, or an IPv6 address without its brackets. */
  readonly host: string;
  readonly port: number;
}

// Labels of letters, digits, '-' and '_' (container names use '_'), 253 characters in all.
const hostLabel = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const hostnamePattern = new RegExp(`^(?=.{1,253}$)${hostLabel}(?:\\.${hostLabel})*$`);

function hostProblem(host: string): string | undefined {
  if (host === '') return 'the host is missing';
  if (/^[0-9.]+$/.test(host)) {
    return isIPv4(host) ? undefined : `"${host}" is not an IPv4 address`;
  }
  return hostnamePattern.test(host) ? undefined : `"${host}" is not a valid host name`;
}

/** Splits `host:port`, or says in words what is wrong with it. */
export function splitHostPort(text: string): HostPort | string {
  if (text === '') return 'it is empty';
  if (/\s/.test(text)) return 'it contains white space';
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return 'the "[" of the IPv6 address is not closed';
    host = text.slice(1, close);
    if (!isIPv6(host)) return `"${host}" is not an IPv6 address`;
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return 'the ":port" after "]" is missing';
    portText = rest.slice(1);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return 'the ":port" is missing';
    host = text.slice(0, colon);
    if (host.includes(':')) return 'an IPv6 address must be in brackets, as in "[::1]:7001"';
    const problem = hostProblem(host);
    if (problem !== undefined) return problem;
    portText = text.slice(colon + 1);
  }
  if (portText === '') return 'the port is missing';
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    return `the port "${portText}" is not a number from 0 to 65535`;
  }
  return { host, port: Number(portText) };
}

export const hostPortAccepted =
  '"host:port" with a port from 0 to 65535 (IPv6 in brackets, as in "[::1]:7001")';

/**
 * Parses `host:port`: a host name, an IPv4 address or a bracketed IPv6 address, then a port from
 * 0 to 65535. Throws KMB_ERR_INVALID_ARGUMENT saying what is wrong.
 */
export function parseHostPort(text: string): HostPort {
  const result = splitHostPort(text);
  if (typeof result === 'string') {
    throw kmbError(
      'invalid_argument',
      `invalid address "${text}": ${result}; expected ${hostPortAccepted}`,
    );
  }
  return result;
}

/** The inverse of parseHostPort: brackets an IPv6 host. */
export function formatHostPort(address: HostPort): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}

/** The same endpoint spelt the same way, for comparing addresses. */
export function canonicalHostPort(text: string): string {
  const result = splitHostPort(text);
  return typeof result === 'string'
    ? text
    : formatHostPort({ ...result, host: result.host.toLowerCase() });
}

/** Whether two listeners would fight over one port: same port, and same or wildcard host. */
export function listenersClash(a: string, b: string): boolean {
  const first = splitHostPort(a);
  const second = splitHostPort(b);
  if (typeof first === 'string' || typeof second === 'string') return false;
  if (first.port !== second.port || first.port === 0) return false;
  const wildcard = (host: string) => host === '0.0.0.0' || host === '::';
  const sameHost = first.host.toLowerCase() === second.host.toLowerCase();
  return sameHost || wildcard(first.host) || wildcard(second.host);
}

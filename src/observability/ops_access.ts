// Who may use the ops port's /debug/* paths ([telemetry] debug_endpoints). Profiles and recent
// log lines expose client addresses, the data directory and the process's internals, and a
// heap snapshot or CPU profile costs the node real work, so by default only clients on this
// machine (loopback) are answered; "any" opens them to every client that reaches the port, and
// "off" closes them to everyone. Health, status and metrics are not affected.
//
// This is a network-level rule only: the security issue adds tokens on top of it. Invariants:
// an address that cannot be read (a socket already gone) is never loopback, and an IPv4 address
// mapped into IPv6 (::ffff:127.0.0.1, what a dual-stack listener reports) counts as its IPv4
// self.

import { isIPv4 } from 'node:net';

export const debugEndpointModes = ['loopback', 'any', 'off'] as const;
export type DebugEndpoints = (typeof debugEndpointModes)[number];

/** The paths the rule covers. */
export const debugPathPrefix = '/debug/';

const mappedIpv4Prefix = '::ffff:';

/** Whether `address` (as node:net reports a peer) is on this machine: 127.0.0.0/8 or ::1. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const lower = address.toLowerCase();
  const v4 = lower.startsWith(mappedIpv4Prefix) ? lower.slice(mappedIpv4Prefix.length) : lower;
  if (isIPv4(v4)) return v4.startsWith('127.');
  return lower === '::1';
}

/**
 * Why a /debug/* request from `remoteAddress` is refused under `mode`, or undefined when it is
 * answered. The reason names the setting, so an operator knows what to change.
 */
export function debugRefusal(
  mode: DebugEndpoints,
  remoteAddress: string | undefined,
): string | undefined {
  if (mode === 'any') return undefined;
  if (mode === 'off') {
    return 'the /debug/* endpoints are turned off ([telemetry] debug_endpoints = "off")';
  }
  if (isLoopbackAddress(remoteAddress)) return undefined;
  return (
    'the /debug/* endpoints answer only clients on this machine ' +
    '([telemetry] debug_endpoints = "loopback"); run the request on the host itself, or set ' +
    'debug_endpoints = "any"'
  );
}

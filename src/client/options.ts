// The options of connect(), their defaults and their validation. Every bound the SDK keeps has
// a name here (HOUSE_RULES §7). Options are checked once, at connect(); a bad one is a KmbError
// with KMB_ERR_INVALID_ARGUMENT.

import { userInfo } from 'node:os';
import type { Tracer } from '@opentelemetry/api';
import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import { fieldLimitMessage, fieldNames } from '../kernel/kernel.js';
import type { Address } from './address.js';
import { parseAddress } from './address.js';
import { defaultBackoff } from './backoff.js';
import type { BackoffPolicy } from './backoff.js';

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Replica addresses as "host:port", in replica order (as the servers' --cluster-peers). */
  readonly addresses: readonly string[];
  /** The cluster to talk to; a node of another cluster is refused. Default: any. */
  readonly clusterName?: string;
  /** Who is acting, recorded with every command. Default: the operating system's user name. */
  readonly actor?: string;
  /** How long one call may take, retries included. Default 30000. */
  readonly requestTimeoutMs?: number;
  /** How long one attempt to connect (TCP and hello) may take. Default 5000. */
  readonly connectTimeoutMs?: number;
  /**
   * How long one node may keep a request or query without answering before the SDK gives up on
   * that node and resends it elsewhere (same request number). Default 5000.
   */
  readonly attemptTimeoutMs?: number;
  /**
   * An OpenTelemetry tracer: each call then gets a client span (`kmb.client.<operation>`) whose
   * context is sent to the server. Without one, only the caller's own span is sent (if any).
   */
  readonly tracer?: Tracer;
  /**
   * Writes this client may have in flight at once (1 to 256; default 1). Each in-flight write
   * needs its own session (the protocol's exactly-once rule allows one request in flight per
   * session), so the client registers up to this many sessions, on demand, over its one
   * connection. With 1, writes commit in the order they were called; with more, writes called
   * without awaiting each other may commit in any order.
   */
  readonly pipelineMax?: number;
  /**
   * Merge concurrent appends to the same stream (same audit fields, no expected offset, no
   * traceContext of their own) into one command while every write slot is busy (default false).
   * Each call still gets its own firstOffset and count and commits atomically; calls merged into
   * one command commit or fail together, and each gets the stream's chainHead after that whole
   * command. Many concurrent small appends then cost the cluster a few requests instead of many:
   * see docs/sdk.md.
   */
  readonly coalesceAppends?: boolean;
}

/** The SDK's defaults and bounds (HOUSE_RULES §7): every queue and list it keeps has a max. */
export const clientLimits = {
  requestTimeoutMsDefault: 30_000,
  connectTimeoutMsDefault: 5_000,
  attemptTimeoutMsDefault: 5_000,
  /** Commands that may wait behind those in flight, per client. */
  requestQueueCountMax: 1024,
  /** Sessions (writes in flight) one client may hold: each is a session slot on the cluster. */
  pipelineMax: 256,
  /** Events one coalesced append command may carry (coalesceAppends). */
  coalescedEventCountMax: 1024,
  /** Events that may wait for a write slot when appends are coalesced, per client. */
  coalescedPendingEventCountMax: 64 * 1024,
  /** Queries in flight at once, per client. */
  queryInFlightCountMax: 1024,
  /** Addresses one client may be given (replicas plus standbys, generously). */
  addressCountMax: 64,
} as const;

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly addresses: readonly Address[];
  readonly clusterName: string;
  readonly actor: string;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
  readonly tracer: Tracer | undefined;
  readonly pipelineMax: number;
  readonly coalesceAppends: boolean;
}

/** The name of the user running this process, or "unknown" when the system cannot tell. */
export function defaultActor(): string {
  try {
    const name = userInfo().username;
    if (name.length > 0) return name;
  } catch {
    // Some containers run as a uid without a passwd entry: fall back to the environment.
  }
  return process.env['USER'] ?? process.env['USERNAME'] ?? 'unknown';
}

function positiveMs(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw kmbError('invalid_argument', `${name} must be a positive integer of milliseconds`);
  }
  return value;
}

export function resolveOptions(options: ConnectOptions): ResolvedOptions {
  if (!Array.isArray(options.addresses) || options.addresses.length === 0) {
    throw kmbError('invalid_argument', 'connect needs at least one address (host:port)');
  }
  if (options.addresses.length > clientLimits.addressCountMax) {
    const max = clientLimits.addressCountMax;
    throw kmbError('invalid_argument', `at most ${max} addresses may be given`);
  }
  return {
    addresses: options.addresses.map(parseAddress),
    clusterName: options.clusterName ?? '',
    actor: actorOf(options.actor),
    requestTimeoutMs: positiveMs(
      options.requestTimeoutMs,
      clientLimits.requestTimeoutMsDefault,
      'requestTimeoutMs',
    ),
    connectTimeoutMs: positiveMs(
      options.connectTimeoutMs,
      clientLimits.connectTimeoutMsDefault,
      'connectTimeoutMs',
    ),
    attemptTimeoutMs: positiveMs(
      options.attemptTimeoutMs,
      clientLimits.attemptTimeoutMsDefault,
      'attemptTimeoutMs',
    ),
    backoff: defaultBackoff,
    random: Math.random,
    tracer: options.tracer,
    pipelineMax: pipelineMaxOf(options.pipelineMax),
    coalesceAppends: booleanOf(options.coalesceAppends, 'coalesceAppends'),
  };
}

/** The actor, refused here when the server would refuse it for its size (command.ts). */
function actorOf(value: string | undefined): string {
  const actor = value ?? defaultActor();
  if (typeof actor !== 'string') throw kmbError('invalid_argument', 'actor must be a string');
  const sizeBytes = Buffer.byteLength(actor, 'utf8');
  if (sizeBytes > constants.actorBytesMax) {
    const message = fieldLimitMessage(fieldNames.actor, sizeBytes, constants.actorBytesMax);
    throw kmbError('limit_exceeded', message);
  }
  return actor;
}

function pipelineMaxOf(value: number | undefined): number {
  if (value === undefined) return 1;
  const max = clientLimits.pipelineMax;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw kmbError('invalid_argument', `pipelineMax must be an integer from 1 to ${max}`);
  }
  return value;
}

function booleanOf(value: boolean | undefined, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw kmbError('invalid_argument', `${name} must be a boolean`);
  return value;
}

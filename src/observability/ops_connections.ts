// The connection cap and the timeouts of the ops HTTP port, so that health checks keep being
// answered whatever else holds connections to it.
//
// Why this exists: with node:http's own cap (server.maxConnections) a connection past the cap
// is dropped before it is read. 64 sockets that connect and say nothing, finish a request and
// keep the connection alive, or trickle header bytes (slowloris), then shut out every probe
// until they go away by themselves: 30 s for keep-alive (keepAliveTimeout), and for the others
// up to node's 30 s timeout-checking interval on top of headersTimeout. A load balancer takes
// the node out meanwhile.
//
// What this does instead: the gate counts connections itself. At the cap, a new connection
// sheds the oldest open one that has no request in progress (idle, between keep-alive
// requests, or still sending its headers), so a probe is always admitted unless every open
// connection is in the middle of a request; only then is it refused, with a 503 and a stable
// code. Timeouts are checked every opsTimeoutCheckIntervalMs, so a slowloris socket is gone
// about headersTimeout after it connected. Shed and refused connections are counted and
// logged (rate-limited).
//
// Invariants: `open` holds exactly the admitted sockets that have not closed, at most
// connectionCountMax of them; a socket's in-progress count is the requests it carries whose
// response has not closed, never negative; a refused socket never has a request served.

import type { ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { Logger } from './logger.js';
import type { OpsInstruments } from './ops_metrics.js';

/** The configurable bounds of the ops port ([telemetry] ops_* keys). */
export interface OpsConnectionLimits {
  /** Connections open at once; at the cap an idle one is shed, else the new one refused. */
  readonly connectionCountMax: number;
  /** A request's headers must have arrived this long after it began (or the socket opened). */
  readonly headersTimeoutMs: number;
  /** A whole request must have arrived this long after it began; >= headersTimeoutMs. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
}

export const opsConnectionDefaults: OpsConnectionLimits = {
  connectionCountMax: constants.opsConnectionCountDefault,
  headersTimeoutMs: constants.opsHeadersTimeoutMsDefault,
  requestTimeoutMs: constants.opsRequestTimeoutMsDefault,
  keepAliveTimeoutMs: constants.opsKeepAliveTimeoutMsDefault,
};

/** How often node:http looks for requests past their timeouts (its default is 30 s). */
export const opsTimeoutCheckIntervalMs = 1000;
/** A refused socket is given this long to take its 503 before it is destroyed. */
export const refusedLingerMs = 1000;
/** At most one shed and one refused warning per this interval (with a suppressed count). */
export const connectionWarnIntervalMs = 10_000;

/** What is wrong with `limits`, or undefined when they are usable. */
export function opsLimitsProblem(limits: OpsConnectionLimits): string | undefined {
  const { connectionCountMax, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = limits;
  const { opsConnectionCountMax, opsTimeoutMsMin, opsTimeoutMsMax } = constants;
  if (!Number.isInteger(connectionCountMax) || connectionCountMax < 1) {
    return `connection cap ${connectionCountMax} is not an integer >= 1`;
  }
  if (connectionCountMax > opsConnectionCountMax) {
    return `connection cap ${connectionCountMax} is above ${opsConnectionCountMax}`;
  }
  for (const [name, ms] of Object.entries({
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs,
  })) {
    if (!Number.isInteger(ms) || ms < opsTimeoutMsMin || ms > opsTimeoutMsMax) {
      return `${name} ${ms} is not an integer in ${opsTimeoutMsMin}..${opsTimeoutMsMax}`;
    }
  }
  if (headersTimeoutMs > requestTimeoutMs) {
    return `headersTimeoutMs ${headersTimeoutMs} is above requestTimeoutMs ${requestTimeoutMs}`;
  }
  return undefined;
}

/** The node:http server options that carry the timeouts (keepAliveTimeout is set after). */
export function timeoutServerOptions(limits: OpsConnectionLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: opsTimeoutCheckIntervalMs,
  };
}

interface ConnectionState {
  /** Requests on this connection whose response has not closed yet. */
  inProgressCount: number;
}

function refusalResponse(connectionCountMax: number): string {
  const message =
    `the ops endpoint holds its maximum of ${connectionCountMax} connections, each with a ` +
    'request in progress; retry shortly';
  const body = JSON.stringify({ error: { code: errorCodes.backpressure, message } });
  return [
    'HTTP/1.1 503 Service Unavailable',
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'cache-control: no-store',
    'retry-after: 1',
    'connection: close',
    '',
    body,
  ].join('\r\n');
}

/** Admits, sheds and refuses the ops port's connections; see the file comment. */
export class ConnectionGate {
  private readonly open = new Map<Socket, ConnectionState>();

  constructor(
    private readonly limits: OpsConnectionLimits,
    private readonly instruments: OpsInstruments,
    private readonly logger: Logger,
  ) {
    assert(opsLimitsProblem(limits) === undefined, 'ops limits are checked before the gate');
    instruments.connections.bind(() => this.open.size);
  }

  /** Connections admitted and still open. */
  get count(): number {
    return this.open.size;
  }

  /** The server's 'connection' listener: admits `socket`, shedding or refusing at the cap. */
  admit(socket: Socket): void {
    if (this.open.size >= this.limits.connectionCountMax && !this.shedOldestIdle(socket)) {
      this.refuse(socket);
      return;
    }
    this.open.set(socket, { inProgressCount: 0 });
    socket.once('close', () => this.open.delete(socket));
    assert(this.open.size <= this.limits.connectionCountMax, 'ops connections above the cap');
  }

  /**
   * Marks a request in progress on its connection until its response closes. False when the
   * connection was refused or shed: the caller must not serve the request.
   */
  track(socket: Socket, response: ServerResponse): boolean {
    const state = this.open.get(socket);
    if (state === undefined) return false;
    state.inProgressCount += 1;
    response.once('close', () => {
      state.inProgressCount -= 1;
      assert(state.inProgressCount >= 0, 'ops request count below zero');
    });
    return true;
  }

  /** Closes the oldest connection with no request in progress; false when there is none. */
  private shedOldestIdle(newcomer: Socket): boolean {
    for (const [socket, state] of this.open) {
      if (state.inProgressCount > 0) continue;
      this.open.delete(socket);
      this.instruments.connectionsShedTotal.inc();
      this.logger.warnRateLimited(
        'ops_connection_shed',
        connectionWarnIntervalMs,
        'Ops connection shed at the connection cap',
        {
          remote: socket.remoteAddress,
          admitted: newcomer.remoteAddress,
          connection_count_max: this.limits.connectionCountMax,
        },
      );
      socket.destroy();
      return true;
    }
    return false;
  }

  private refuse(socket: Socket): void {
    this.instruments.connectionsRefusedTotal.inc();
    this.instruments.errorsTotal(errorCodes.backpressure).inc();
    this.logger.warnRateLimited(
      'ops_connection_refused',
      connectionWarnIntervalMs,
      'Ops connection refused: every connection has a request in progress',
      { remote: socket.remoteAddress, connection_count_max: this.limits.connectionCountMax },
    );
    socket.end(refusalResponse(this.limits.connectionCountMax));
    setTimeout(() => socket.destroy(), refusedLingerMs).unref();
  }
}

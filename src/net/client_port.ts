// The client port: the TCP listener that replicas and clients share, and the hygiene of every
// connection on it (issue 14). It owns the server socket, reads each new connection's first
// frame to tell a replica (replica hello: handed to the replica bus) from a client (a
// Connection whose messages go to the node), and enforces the bounds that keep one peer from
// taking the port or the node's memory:
//   - a handshake timeout: the first frame must arrive within connectionHandshakeTimeoutMs;
//   - an idle timeout: a client connection with no complete frame for idleTimeoutMs is closed;
//   - a frame timeout: a frame whose first bytes arrived must be complete within frameTimeoutMs
//     (defeats a peer that sends one byte a second);
//   - a global budget of bytes held for incomplete frames (frame_budget.ts): past it, the
//     connection holding the most is answered KMB_ERR_BACKPRESSURE and closed;
//   - a connection limit that accepts, then answers: a client past it gets an `error` frame
//     (KMB_ERR_BACKPRESSURE, naming the limit) and a closed connection, never a silent reset.
//     Connections still in their handshake have their own cap, so replicas always get in.
// Every refusal and every close for a limit is reported to ClientPortEvents (the node turns
// them into metrics and rate-limited log lines). Timeouts and limits close with a
// connection-scoped error whose code is retryable, so the SDK reconnects on its own.
//
// Invariants: a socket is in at most one of `pending` and `clients`; each holds one open budget
// account while its decoder may buffer bytes, released the moment it closes; the budget's sum
// never exceeds its bound once a read has been handled; the timers are one interval for the
// whole port (a sweep), not one timer per connection.

import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { encodeMessageFrame } from './client_protocol.js';
import type { ClientMessage } from './client_protocol.js';
import { Connection } from './connection.js';
import { FrameDecoder } from './frame.js';
import type { Frame } from './frame.js';
import { FrameBudget, bufferedCostBytes } from './frame_budget.js';
import type { FrameBudgetAccount } from './frame_budget.js';
import { replicaFrameKind } from './replica_bus.js';

/** The bounds of the port; the node reads them from [server] (docs/configuration.md). */
export interface ClientPortLimits {
  /** Client connections served at once ([server] max_connections). */
  readonly connectionCountMax: number;
  /** A client connection that completes no frame for this long is closed. */
  readonly idleTimeoutMs: number;
  /** A frame whose first bytes arrived must be complete within this. */
  readonly frameTimeoutMs: number;
  /** Bytes held for incomplete frames, all connections together. */
  readonly frameBufferBudgetBytes: number;
}

/** Why a new connection was refused (kmb_client_connections_rejected_total{reason}). */
export type ClientPortRejectReason = 'connection_limit' | 'handshake_limit';
/** Why the port closed a connection (kmb_client_connections_closed_total{reason}). */
export type ClientPortCloseReason =
  'handshake_timeout' | 'idle_timeout' | 'frame_timeout' | 'frame_buffer_budget';

export interface ClientPortHandlers {
  onClientMessage(connection: Connection, message: ClientMessage): void;
  onConnectionClosed(connection: Connection): void;
  /** A first frame that is a replica hello: true when the replica bus took the socket. */
  onReplicaHello(socket: Socket, hello: Frame, decoder: FrameDecoder): boolean;
  /** A socket that became a client connection (for byte counters). */
  onClientSocket?(socket: Socket): void;
}

/** What the port reports, for metrics and logs. `message` is what the peer was told. */
export interface ClientPortEvents {
  protocolError(code: ErrorCode, message: string, remote: string): void;
  rejected(reason: ClientPortRejectReason, remote: string, message: string): void;
  closed(reason: ClientPortCloseReason, remote: string, message: string): void;
}

export interface ClientPortOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: ClientPortLimits;
  readonly handlers: ClientPortHandlers;
  readonly events: ClientPortEvents;
  /** Monotonic milliseconds (tests may inject); default performance.now. */
  readonly nowMs?: () => number;
}

/** How long a refused socket may linger after its error frame before it is destroyed. */
const refuseLingerMs = 1000;
/** The sweep runs at a quarter of the shortest timeout, within these bounds. */
const sweepIntervalMsMin = 10;
const sweepIntervalMsMax = 1000;

interface PendingEntry {
  readonly decoder: FrameDecoder;
  readonly acceptedMs: number;
  readonly account: FrameBudgetAccount;
}

interface ClientEntry {
  readonly account: FrameBudgetAccount;
  /** When the last complete frame arrived (the hello, at first). */
  lastFrameMs: number;
  /** When the incomplete frame the decoder holds began to arrive; null when none. */
  partialSinceMs: number | null;
}

function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
}

export class ClientPort {
  private readonly pending = new Map<Socket, PendingEntry>();
  private readonly clients = new Map<Connection, ClientEntry>();
  private readonly budget: FrameBudget;
  private readonly nowMs: () => number;
  private readonly sweepTimer: NodeJS.Timeout;
  private refusingCount = 0;
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly options: ClientPortOptions,
  ) {
    const { limits } = options;
    assert(limits.connectionCountMax >= 1, 'the port serves at least one client');
    assert(limits.idleTimeoutMs > 0 && limits.frameTimeoutMs > 0, 'timeouts are positive');
    this.budget = new FrameBudget(limits.frameBufferBudgetBytes);
    this.nowMs = options.nowMs ?? (() => performance.now());
    const shortestMs = Math.min(
      limits.idleTimeoutMs,
      limits.frameTimeoutMs,
      constants.connectionHandshakeTimeoutMs,
    );
    const sweepMs = Math.min(sweepIntervalMsMax, Math.max(sweepIntervalMsMin, shortestMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  /** Binds host:port and starts accepting. */
  static async listen(options: ClientPortOptions): Promise<ClientPort> {
    let port: ClientPort | null = null;
    const server = createServer((socket) => {
      if (port === null) socket.destroy();
      else port.accept(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = new ClientPort(server, options);
    return port;
  }

  /** The port actually bound (port 0 resolved). */
  get boundPort(): number {
    const bound = this.server.address();
    assert(bound !== null && typeof bound === 'object', 'server is bound to an address');
    return bound.port;
  }

  /** Bytes held for incomplete frames across every connection (kmb_client_frame_buffer_bytes). */
  get bufferedBytes(): number {
    return this.budget.usedBytes;
  }

  /** Client connections open (kmb_client_connections). */
  get connectionCount(): number {
    return this.clients.size;
  }

  /** Stops accepting; connections already open stay until closeConnections(). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweepTimer);
    this.server.close();
  }

  /** Flushes and closes every client connection; drops connections still in their handshake. */
  closeConnections(): void {
    for (const connection of this.clients.keys()) connection.close();
    for (const socket of this.pending.keys()) socket.destroy();
  }

  // ----- the first frame -----

  private accept(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.pending.size >= constants.connectionHandshakeCountMax) {
      const max = constants.connectionHandshakeCountMax;
      this.refuse(socket, 'handshake_limit', `${max} connections are already in their handshake`);
      return;
    }
    const decoder = new FrameDecoder();
    const entry: PendingEntry = {
      decoder,
      acceptedMs: this.nowMs(),
      account: this.budget.open(() => this.dropPending(socket, 'frame_buffer_budget')),
    };
    this.pending.set(socket, entry);
    const onData = (data: Buffer): void => {
      const { frames } = decoder.push(data);
      entry.account.charge(bufferedCostBytes(decoder));
      this.budget.enforce();
      if (this.pending.get(socket) !== entry) return; // Evicted by the budget just now.
      if (frames.length === 0 && decoder.error === null) return;
      socket.off('data', onData);
      this.pending.delete(socket);
      entry.account.release();
      this.route(socket, decoder, frames);
    };
    socket.on('data', onData);
    socket.once('close', () => {
      if (this.pending.get(socket) !== entry) return;
      this.pending.delete(socket);
      entry.account.release();
    });
  }

  /** The first frame arrived (or garbage did): a replica, a client, or a refusal. */
  private route(socket: Socket, decoder: FrameDecoder, frames: readonly Frame[]): void {
    const first = frames[0];
    if (first?.kind === replicaFrameKind.hello) {
      if (this.options.handlers.onReplicaHello(socket, first, decoder)) return;
    }
    const max = this.options.limits.connectionCountMax;
    if (this.clients.size >= max) {
      decoder.release();
      this.refuse(
        socket,
        'connection_limit',
        `this node already serves ${max} client connections ([server] max_connections)`,
      );
      return;
    }
    this.acceptClient(socket, decoder, frames);
  }

  /**
   * Answers a refused socket with a connection-scoped error naming the limit, then closes it.
   * The socket keeps being read (and the bytes dropped) until it closes: closing a socket
   * with unread bytes would send a reset that could destroy the error frame in flight.
   */
  private refuse(socket: Socket, reason: ClientPortRejectReason, what: string): void {
    const message = `${what}; retry later or use another replica`;
    this.options.events.rejected(reason, remoteOf(socket), message);
    if (this.refusingCount >= constants.connectionRefusingCountMax) {
      socket.destroy();
      return;
    }
    this.refusingCount += 1;
    socket.once('close', () => {
      this.refusingCount -= 1;
    });
    socket.on('data', () => undefined);
    socket.resume();
    socket.end(connectionError(errorCodes.backpressure, message));
    setTimeout(() => socket.destroy(), refuseLingerMs).unref();
  }

  private dropPending(socket: Socket, reason: ClientPortCloseReason): void {
    const entry = this.pending.get(socket);
    if (entry === undefined) return;
    this.pending.delete(socket);
    entry.decoder.release();
    entry.account.release();
    const message =
      reason === 'handshake_timeout'
        ? `no hello within ${constants.connectionHandshakeTimeoutMs} ms`
        : this.budgetMessage();
    this.options.events.closed(reason, remoteOf(socket), message);
    if (reason === 'handshake_timeout') socket.destroy();
    else socket.end(connectionError(errorCodes.backpressure, message));
    setTimeout(() => socket.destroy(), refuseLingerMs).unref();
  }

  // ----- client connections -----

  private acceptClient(socket: Socket, decoder: FrameDecoder, frames: readonly Frame[]): void {
    this.options.handlers.onClientSocket?.(socket);
    const nowMs = this.nowMs();
    const holder: { connection: Connection | null } = { connection: null };
    const entry: ClientEntry = {
      account: this.budget.open(() => {
        if (holder.connection !== null) this.evict(holder.connection);
      }),
      lastFrameMs: nowMs,
      partialSinceMs: decoder.bufferedSizeBytes > 0 ? nowMs : null,
    };
    const { handlers, events } = this.options;
    const connection = new Connection(
      socket,
      {
        onMessage: (c, message) => handlers.onClientMessage(c, message),
        onProtocolError: (c, code, message) => events.protocolError(code, message, c.remoteAddress),
        onClose: (c) => this.onClosed(c),
        onReceived: (c, frameCount) => this.onReceived(c, frameCount),
      },
      undefined,
      { decoder, frames },
    );
    holder.connection = connection;
    this.clients.set(connection, entry);
    entry.account.charge(connection.bufferedCostBytes);
    this.budget.enforce();
  }

  private onReceived(connection: Connection, frameCount: number): void {
    const entry = this.clients.get(connection);
    if (entry === undefined || connection.closed) return;
    const nowMs = this.nowMs();
    if (frameCount > 0) entry.lastFrameMs = nowMs;
    const costBytes = connection.bufferedCostBytes;
    if (costBytes === 0) entry.partialSinceMs = null;
    else if (frameCount > 0 || entry.partialSinceMs === null) entry.partialSinceMs = nowMs;
    entry.account.charge(costBytes);
    this.budget.enforce();
  }

  private onClosed(connection: Connection): void {
    const entry = this.clients.get(connection);
    if (entry === undefined) return;
    this.clients.delete(connection);
    entry.account.release();
    this.options.handlers.onConnectionClosed(connection);
  }

  private evict(connection: Connection): void {
    this.closeClient(
      connection,
      'frame_buffer_budget',
      errorCodes.backpressure,
      this.budgetMessage(),
    );
  }

  private budgetMessage(): string {
    const budget = this.options.limits.frameBufferBudgetBytes;
    return (
      `the node holds ${budget} bytes of incomplete frames ([server] frame_buffer_budget_bytes) ` +
      'and this connection held the most'
    );
  }

  /** Closes a client connection for a limit: reported, answered, its buffer freed now. */
  private closeClient(
    connection: Connection,
    reason: ClientPortCloseReason,
    code: ErrorCode,
    message: string,
  ): void {
    // Released first, whatever else happens: an eviction must free the account (frame_budget).
    this.clients.get(connection)?.account.release();
    if (connection.closed) return;
    this.options.events.closed(reason, connection.remoteAddress, message);
    connection.closeWith(code, message);
  }

  // ----- timers -----

  /** Closes what outstayed its timeout: handshakes, incomplete frames, idle connections. */
  private sweep(): void {
    const nowMs = this.nowMs();
    for (const [socket, entry] of this.pending) {
      if (nowMs - entry.acceptedMs >= constants.connectionHandshakeTimeoutMs) {
        this.dropPending(socket, 'handshake_timeout');
      }
    }
    const { idleTimeoutMs, frameTimeoutMs } = this.options.limits;
    for (const [connection, entry] of this.clients) {
      if (connection.closed) continue;
      if (entry.partialSinceMs !== null && nowMs - entry.partialSinceMs >= frameTimeoutMs) {
        const message =
          `a frame begun ${Math.round(nowMs - entry.partialSinceMs)} ms ago is still ` +
          `incomplete ([server] frame_timeout_ms = ${frameTimeoutMs})`;
        this.closeClient(connection, 'frame_timeout', errorCodes.timeout, message);
      } else if (nowMs - entry.lastFrameMs >= idleTimeoutMs) {
        const message =
          `no request for ${idleTimeoutMs} ms ([server] idle_timeout_ms); ` +
          'connect again to continue';
        this.closeClient(connection, 'idle_timeout', errorCodes.timeout, message);
      }
    }
  }
}

/** A connection-scoped error frame. */
function connectionError(code: ErrorCode, message: string): Uint8Array {
  return encodeMessageFrame({
    kind: 'error',
    error: { scope: { kind: 'connection' }, code, message, leaderHint: -1 },
  });
}

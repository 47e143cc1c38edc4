// Links between replicas (DESIGN.md §3, issue "a real cluster"). There is one link per pair of
// replicas: replica i dials replica j when i < j, on j's one TCP port (the same port clients
// use), and introduces itself with a `replica_hello` frame naming the cluster, the cluster id and
// its replica index; the accepting side hands such a connection to its bus and answers with its
// own hello. A link carries messages both ways. One dialer per pair means two replicas never race
// to replace each other's link. The bus:
//   - reconnects with exponential backoff and jitter (bounded) when a link drops;
//   - lets the side that does not dial knock: while it has no link to a lower-numbered replica
//     (at start, and after its link dropped) it connects to it, says its hello and is closed
//     again; the dialing side, unless its own link to the knocker is live (then the knock is
//     ignored), forgets its backoff and dials at once. A replica that restarts is
//     therefore linked within a round trip, not after the other side's backoff (up to
//     reconnectDelayMsMax plus jitter). Knocks repeat on the same bounded backoff while no link
//     comes, and one that is not closed within knockTimeoutMs is given up;
//   - coalesces the frames written in one tick into one socket write;
//   - bounds each peer's send queue: past sendQueueBytesMax messages are dropped and counted —
//     VSR tolerates lost messages, and a stalled peer must not exhaust memory;
//   - checks every frame's checksum (FrameDecoder) and closes a link on any framing error;
//   - rejects a peer from another cluster, with both names and ids in the reason;
//   - refuses a hello that claims this replica's own index, and a second hello for a replica
//     whose link is live (it carried a frame within linkQuietMsMax): the real link stays up.
//     A replica that restarts gets back in as soon as its old link closes (its process died,
//     so its sockets did) or has been quiet that long. Links are not authenticated yet (mTLS
//     is a later issue): an impostor can still take the place of a replica whose link is down.
//     A knock gives an impostor nothing more: it is checked like any hello (cluster, version,
//     index) and only brings forward a dial to the address this replica was configured with.
// Replica messages travel as opaque bodies with a kind byte; their codec lives elsewhere, so the
// bus knows nothing of VSR.

import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { assert } from '../core/assert.js';
import { DecodeError, Reader, Writer } from '../core/binary.js';
import { constants } from '../core/constants.js';
import { FrameDecoder, encodeFrame } from './frame.js';
import { TickCork } from './tick_cork.js';
import type { Frame } from './frame.js';

/** Frame kinds of the replica protocol; client kinds are below 64. */
export const replicaFrameKind = { hello: 64, message: 65 } as const;
export const replicaProtocolVersion = 1;

export interface ReplicaHello {
  readonly protocolVersion: number;
  readonly clusterName: string;
  readonly cluster: number;
  readonly replica: number;
  readonly replicaCount: number;
}

export function encodeReplicaHello(hello: ReplicaHello): Uint8Array {
  return new Writer(64)
    .u16(hello.protocolVersion)
    .string(hello.clusterName)
    .u64(hello.cluster)
    .u8(hello.replica)
    .u8(hello.replicaCount)
    .finish();
}

export function decodeReplicaHello(body: Uint8Array): ReplicaHello {
  const reader = new Reader(body);
  const hello = {
    protocolVersion: reader.u16(),
    clusterName: reader.string(256),
    cluster: reader.u64(),
    replica: reader.u8(),
    replicaCount: reader.u8(),
  };
  reader.end();
  return hello;
}

export interface BusPeer {
  readonly replica: number;
  readonly host: string;
  readonly port: number;
}

/** What kind of refusal onRejected reports (for counting; the reason is the detail). */
export type BusRejection =
  /** A hello from another cluster (name or id). */
  | 'cluster_mismatch'
  /** A second hello for a replica whose link is live. */
  | 'link_taken'
  /** A hello claiming this replica's own index. */
  | 'self_index'
  /** Anything else: a malformed hello, a wrong version or size, the wrong direction, framing. */
  | 'handshake';

/** A link that carried a frame within this long is live: another hello for it is refused. */
export const linkQuietMsMax = 3_000;

/** A knock the peer neither closes nor answers within this long is given up (a stopped peer). */
export const knockTimeoutMs = 1_000;

/**
 * Knocks from one peer answered by a dial at most this often: a flood of knocks (a stranger's)
 * costs this replica at most one dial and one log line per peer per interval.
 */
export const knockIntervalMsMin = 250;

/** The bounds of the reconnect (and knock) backoff unless the options say otherwise. */
export const reconnectDelayMsMinDefault = 50;
export const reconnectDelayMsMaxDefault = 2_000;

export interface BusHandlers {
  /** A message from a peer: its kind byte (application-defined) and body. */
  onMessage(from: number, kind: number, body: Uint8Array): void;
  /** A link came up or went down (for status, metrics and logs). */
  onLinkChange?(peer: number, up: boolean): void;
  /** A peer or a stranger was refused or misbehaved; the reason is for the operator. */
  onRejected?(remote: string, reason: string, kind: BusRejection): void;
  /** A replica this one dials knocked (it is back): it is dialed now, not after the backoff. */
  onKnock?(peer: number): void;
}

export interface BusOptions {
  readonly self: ReplicaHello;
  readonly peers: readonly BusPeer[];
  readonly handlers: BusHandlers;
  readonly sendQueueBytesMax?: number;
  readonly reconnectDelayMsMin?: number;
  readonly reconnectDelayMsMax?: number;
  /** Jitter source in [0, 1); injected so tests are repeatable. */
  readonly random?: () => number;
  /** Milliseconds of a monotonic clock (default performance.now), for link liveness. */
  readonly nowMs?: () => number;
}

export interface BusCounters {
  sentMessages: number;
  droppedMessages: number;
  receivedMessages: number;
  rejectedConnections: number;
  reconnects: number;
  /** Knocks this replica answered by dialing at once. */
  knocks: number;
  /** Knocks ignored: the link was live, or one was answered within knockIntervalMsMin. */
  knocksIgnored: number;
  /** Knocks this replica sent (connections to a lower-numbered replica it had no link to). */
  knocksSent: number;
}

interface Link {
  socket: Socket;
  decoder: FrameDecoder;
  /** Frames sent to the peer in one tick leave in one write. */
  readonly cork: TickCork;
  /** When the link last carried a frame from the peer (or came up). */
  receivedMs: number;
}

export class ReplicaBus {
  readonly counters: BusCounters = {
    sentMessages: 0,
    droppedMessages: 0,
    receivedMessages: 0,
    rejectedConnections: 0,
    reconnects: 0,
    knocks: 0,
    knocksIgnored: 0,
    knocksSent: 0,
  };
  private readonly links = new Map<number, Link>();
  private readonly dialing = new Set<number>();
  /** Peers this replica is knocking at now (a connection open or a knock due). */
  private readonly knocking = new Set<number>();
  /** When a knock from each peer was last answered by a dial (nowMs). */
  private readonly knockAnsweredMs = new Map<number, number>();
  private readonly retryDelayMs = new Map<number, number>();
  /** The next redial or knock due for each peer (at most one each). */
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: BusOptions) {
    assert(options.self.replica < options.self.replicaCount, 'self index in range');
    for (const peer of options.peers) assert(peer.replica !== options.self.replica, 'not self');
  }

  /**
   * Dials every peer with a higher index and knocks at every peer with a lower one; links are
   * kept up until close().
   */
  start(): void {
    for (const peer of this.options.peers) {
      if (this.dials(peer.replica)) this.dial(peer);
      else this.knock(peer);
    }
  }

  /** Whether this replica is the one that dials the link to `peer`. */
  private dials(peer: number): boolean {
    return this.options.self.replica < peer;
  }

  isConnected(peer: number): boolean {
    return this.links.has(peer);
  }

  connectedPeers(): number[] {
    return [...this.links.keys()].sort((a, b) => a - b);
  }

  /** Queues a message to a peer; dropped (and counted) when the link is down or backed up. */
  send(peer: number, kind: number, body: Uint8Array): boolean {
    const link = this.links.get(peer);
    const queueMax = this.options.sendQueueBytesMax ?? constants.connectionSendQueueBytesMax;
    if (link === undefined || link.socket.writableLength > queueMax) {
      this.counters.droppedMessages += 1;
      return false;
    }
    link.cork.hold();
    link.socket.write(encodeFrame(replicaFrameKind.message, body, kind));
    this.counters.sentMessages += 1;
    return true;
  }

  /**
   * Takes over an inbound connection whose first frame was a replica hello (the node's
   * client listener peeks at the first frame and hands replica connections here). `rest` is
   * whatever the decoder already buffered after the hello.
   */
  acceptInbound(socket: Socket, hello: Frame, decoder: FrameDecoder): void {
    const peer = this.checkHello(socket, hello.body);
    if (peer === null) return;
    if (this.dials(peer)) {
      this.onKnock(socket, peer);
      return;
    }
    if (this.refusedAsTaken(socket, peer)) return;
    this.sendHello(socket);
    this.adopt(peer, socket, decoder);
  }

  /** How long ago the link to `peer` carried a frame (Infinity without a link). */
  private quietMs(peer: number): number {
    const existing = this.links.get(peer);
    return existing === undefined ? Infinity : this.nowMs() - existing.receivedMs;
  }

  /** Refuses (as link_taken) a hello for a peer whose link is live; true when it did. */
  private refusedAsTaken(socket: Socket, peer: number): boolean {
    const quietMs = this.quietMs(peer);
    if (quietMs > linkQuietMsMax) return false;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    const reason =
      `replica ${peer} is already linked (a live link, heard ${Math.round(quietMs)} ms ago): ` +
      'refusing the newcomer';
    this.reject(socket, remote, reason, 'link_taken');
    return true;
  }

  /**
   * A hello from a replica this one dials: a knock. The connection is closed either way. With
   * a live link to that replica the knock is ignored (a knock that crossed this replica's own
   * dial, or an impostor's: a knock carries no authority, it only brings a dial to the
   * configured address forward), and so is one within knockIntervalMsMin of the last answered.
   * Otherwise the peer is (back) up: the link is dialed now, replacing any quiet old one.
   */
  private onKnock(socket: Socket, peer: number): void {
    socket.destroy();
    const target = this.options.peers.find((p) => p.replica === peer);
    if (target === undefined || this.closed) return;
    const sinceMs = this.nowMs() - (this.knockAnsweredMs.get(peer) ?? -Infinity);
    if (this.quietMs(peer) <= linkQuietMsMax || sinceMs < knockIntervalMsMin) {
      this.counters.knocksIgnored += 1;
      return;
    }
    this.knockAnsweredMs.set(peer, this.nowMs());
    this.counters.knocks += 1;
    this.options.handlers.onKnock?.(peer);
    this.clearTimer(peer);
    this.retryDelayMs.delete(peer);
    if (!this.dialing.has(peer)) this.counters.reconnects += 1;
    this.dial(target, true);
  }

  private clearTimer(peer: number): void {
    const timer = this.timers.get(peer);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(peer);
  }

  private checkHello(socket: Socket, body: Uint8Array): number | null {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    let hello: ReplicaHello;
    try {
      hello = decodeReplicaHello(body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      return this.reject(socket, remote, `malformed replica hello: ${error.message}`);
    }
    const self = this.options.self;
    if (hello.clusterName !== self.clusterName || hello.cluster !== self.cluster) {
      return this.reject(
        socket,
        remote,
        `replica ${hello.replica} belongs to cluster "${hello.clusterName}" (id ${hello.cluster}), ` +
          `this replica to cluster "${self.clusterName}" (id ${self.cluster})`,
        'cluster_mismatch',
      );
    }
    if (hello.protocolVersion !== replicaProtocolVersion) {
      return this.reject(socket, remote, `replica protocol ${hello.protocolVersion} unsupported`);
    }
    if (hello.replica === self.replica) {
      const reason = `a hello claims this replica's own index ${hello.replica}`;
      return this.reject(socket, remote, reason, 'self_index');
    }
    const known = this.options.peers.some((p) => p.replica === hello.replica);
    if (!known || hello.replicaCount !== self.replicaCount) {
      return this.reject(
        socket,
        remote,
        `replica ${hello.replica} of ${hello.replicaCount} is not a peer of this cluster ` +
          `(${self.replicaCount} replicas)`,
      );
    }
    return hello.replica;
  }

  private reject(
    socket: Socket,
    remote: string,
    reason: string,
    kind: BusRejection = 'handshake',
  ): null {
    this.counters.rejectedConnections += 1;
    this.options.handlers.onRejected?.(remote, reason, kind);
    socket.destroy();
    return null;
  }

  private nowMs(): number {
    return (this.options.nowMs ?? (() => performance.now()))();
  }

  private sendHello(socket: Socket): void {
    socket.write(encodeFrame(replicaFrameKind.hello, encodeReplicaHello(this.options.self)));
  }

  /** Dials `peer` unless a dial is under way or (unless `replace`) a link is up. */
  private dial(peer: BusPeer, replace = false): void {
    if (this.closed || this.dialing.has(peer.replica)) return;
    if (this.links.has(peer.replica) && !replace) return;
    this.dialing.add(peer.replica);
    const socket = netConnect({ host: peer.host, port: peer.port });
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    const onFailure = (): void => {
      socket.destroy();
      this.dialing.delete(peer.replica);
      this.scheduleRedial(peer);
    };
    socket.once('error', onFailure);
    socket.once('connect', () => this.sendHello(socket));
    const onData = (data: Buffer): void => {
      const { frames, error } = decoder.push(data);
      if (error !== null) return onFailure();
      const first = frames[0];
      if (first === undefined) return;
      socket.off('data', onData);
      socket.off('error', onFailure);
      this.dialing.delete(peer.replica);
      if (first.kind !== replicaFrameKind.hello) return onFailure();
      const answered = this.checkHello(socket, first.body);
      if (answered !== peer.replica) return this.scheduleRedial(peer);
      this.adopt(peer.replica, socket, decoder);
      for (const frame of frames.slice(1)) this.onFrame(peer.replica, socket, frame);
    };
    socket.on('data', onData);
    socket.once('close', () => {
      if (this.dialing.delete(peer.replica)) this.scheduleRedial(peer);
    });
  }

  /**
   * Knocks at `peer` (a lower-numbered replica, which dials this one) unless a link is up or a
   * knock is under way: connect, say hello, and wait for the peer to close the connection
   * (it dials back) or for knockTimeoutMs. While no link comes, the knock repeats on the
   * backoff.
   */
  private knock(peer: BusPeer): void {
    if (this.closed || this.links.has(peer.replica) || this.knocking.has(peer.replica)) return;
    this.knocking.add(peer.replica);
    this.counters.knocksSent += 1;
    const socket = netConnect({ host: peer.host, port: peer.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(), knockTimeoutMs);
    socket.on('error', () => socket.destroy());
    socket.once('connect', () => this.sendHello(socket));
    socket.on('data', () => socket.destroy());
    socket.once('close', () => {
      clearTimeout(timer);
      this.knocking.delete(peer.replica);
      this.scheduleRetry(peer);
    });
  }

  private scheduleRedial(peer: BusPeer): void {
    if (this.dials(peer.replica)) this.scheduleRetry(peer);
  }

  /** The next dial (or knock, for a peer that dials this one) after the backoff, if still due. */
  private scheduleRetry(peer: BusPeer): void {
    if (this.closed || this.links.has(peer.replica) || this.timers.has(peer.replica)) return;
    const min = this.options.reconnectDelayMsMin ?? reconnectDelayMsMinDefault;
    const max = this.options.reconnectDelayMsMax ?? reconnectDelayMsMaxDefault;
    const previous = this.retryDelayMs.get(peer.replica) ?? min / 2;
    const delay = Math.min(max, previous * 2);
    this.retryDelayMs.set(peer.replica, delay);
    const jitter = (this.options.random ?? Math.random)() * delay * 0.5;
    const timer = setTimeout(() => {
      this.timers.delete(peer.replica);
      if (!this.dials(peer.replica)) return this.knock(peer);
      this.counters.reconnects += 1;
      this.dial(peer);
    }, delay + jitter);
    this.timers.set(peer.replica, timer);
  }

  private adopt(peer: number, socket: Socket, decoder: FrameDecoder): void {
    const existing = this.links.get(peer);
    if (existing !== undefined && existing.socket !== socket) {
      // The peer redialed before this side noticed the old link die: the new one wins.
      existing.socket.removeAllListeners('close');
      existing.socket.destroy();
    }
    // Both ends of a link, the accepted one too: with Nagle's algorithm on, a small message
    // (a prepare_ok) written while earlier bytes are unacknowledged waits for the peer's delayed
    // ACK, which showed in the p99 of single writes (docs/performance.md, "Figures behind the
    // code").
    socket.setNoDelay(true);
    const link: Link = { socket, decoder, cork: new TickCork(socket), receivedMs: this.nowMs() };
    this.links.set(peer, link);
    this.retryDelayMs.delete(peer);
    this.clearTimer(peer);
    this.options.handlers.onLinkChange?.(peer, true);
    socket.on('data', (data: Buffer) => {
      const { frames, error } = decoder.push(data);
      if (frames.length > 0) link.receivedMs = this.nowMs();
      for (const frame of frames) this.onFrame(peer, socket, frame);
      if (error !== null) {
        const reason = `${error.code}: ${error.message}`;
        this.options.handlers.onRejected?.(`replica ${peer}`, reason, 'handshake');
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      if (this.links.get(peer)?.socket !== socket) return;
      this.links.delete(peer);
      this.options.handlers.onLinkChange?.(peer, false);
      const target = this.options.peers.find((p) => p.replica === peer);
      if (target !== undefined) this.scheduleRetry(target);
    });
  }

  private onFrame(peer: number, socket: Socket, frame: Frame): void {
    if (frame.kind !== replicaFrameKind.message || frame.body.length < 1) {
      const reason = `unexpected frame kind ${frame.kind}`;
      this.options.handlers.onRejected?.(`replica ${peer}`, reason, 'handshake');
      socket.destroy();
      return;
    }
    this.counters.receivedMessages += 1;
    this.options.handlers.onMessage(peer, frame.body[0] ?? 0, frame.body.subarray(1));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const link of this.links.values()) link.socket.destroy();
    this.links.clear();
  }
}

// The peers sink: this replica's links to the others over the replica bus (net/replica_bus.ts,
// the same port clients use). Outbound, it encodes each replica message once per broadcast (a
// broadcast is one message object with one send effect per target, so a prepare's body is encoded
// once, not once per backup) and counts what it sent. Inbound, it drops what a full disk cannot
// take (disk_space.ts), decodes each frame (a frame that does not decode is counted and logged,
// rate-limited, and dropped), refuses a message whose sender field is not the link's replica,
// and hands the rest to the replica through `deliver`. A single node has no bus: sends go
// nowhere and it never receives.

import { DecodeError } from '../core/binary.js';
import type { ReplicaIndex } from '../core/types.js';
import { ReplicaBus, replicaProtocolVersion } from '../net/replica_bus.js';
import type { Socket } from 'node:net';
import type { Frame, FrameDecoder } from '../net/frame.js';
import { decodeReplicaMessage, encodeReplicaMessage } from '../net/replica_codec.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PeerSink } from '../vsr/effect_driver.js';
import type { Effect, ReplicaMessage } from '../vsr/message.js';
import { parseHostPort } from './config_address.js';
import { mark, timelineOn } from './timeline.js';
import type { DiskSpace } from './disk_space.js';
import type { NodeMetrics } from './node_metrics.js';
import { logReplicaRejections, onBusRejected } from './peer_rejections.js';

export interface PeerLinkOptions {
  readonly clusterName: string;
  readonly cluster: number;
  readonly nodeId: number;
  /** Every replica's host:port, in replica order. */
  readonly peers: readonly string[];
  readonly metrics: Metrics;
  readonly nodeMetrics: NodeMetrics;
  /** Target kmb_net. */
  readonly logger: Logger;
  readonly disk: DiskSpace;
  /** Appends queued in the journal (a full disk drops prepares past a bound). */
  readonly journalPendingCount: () => number;
  /** Hands a message to the replica; returns its effects (refusals are logged from them). */
  readonly deliver: (message: ReplicaMessage) => readonly Effect<unknown>[];
}

export class PeerLink implements PeerSink {
  private bus: ReplicaBus | null = null;
  /** The last replica message encoded (see encodeOnce). */
  private lastEncoded: { message: ReplicaMessage; tag: number; body: Uint8Array } | null = null;

  constructor(private readonly options: PeerLinkOptions) {}

  /** Starts dialling the peers (no-op for a single node). */
  start(): void {
    const o = this.options;
    if (o.peers.length === 1) return;
    const peers = o.peers.flatMap((address, replica) => {
      if (replica === o.nodeId) return [];
      const { host, port } = parseHostPort(address);
      return [{ replica, host, port }];
    });
    this.bus = new ReplicaBus({
      self: {
        protocolVersion: replicaProtocolVersion,
        clusterName: o.clusterName,
        cluster: o.cluster,
        replica: o.nodeId,
        replicaCount: o.peers.length,
      },
      peers,
      handlers: {
        onMessage: (from, tag, body) => this.onFrame(from, tag, body),
        onLinkChange: (peer, up) =>
          o.logger.info(up ? 'Replica link up' : 'Replica link down', { peer }),
        onKnock: (peer) => o.logger.info('Replica link knock', { peer }),
        onRejected: (remote, reason, kind) => {
          const deps = { metrics: o.metrics, nodeMetrics: o.nodeMetrics, logger: o.logger };
          onBusRejected(deps, remote, reason, kind);
        },
      },
    });
    this.bus.start();
  }

  /** A socket whose first frame was a replica hello: true when the bus took it. */
  acceptInbound(socket: Socket, hello: Frame, decoder: FrameDecoder): boolean {
    if (this.bus === null) return false;
    this.bus.acceptInbound(socket, hello, decoder);
    return true;
  }

  /** The peers with a live link now. */
  connectedPeers(): readonly number[] {
    return this.bus?.connectedPeers() ?? [];
  }

  send(target: ReplicaIndex, message: ReplicaMessage): void {
    if (timelineOn) markSend(message, target);
    const { tag, body } = this.encodeOnce(message);
    const sent = this.bus?.send(target, tag, body) ?? false;
    this.options.nodeMetrics.onSend(message, body.length, sent);
  }

  async close(): Promise<void> {
    await this.bus?.close();
  }

  private onFrame(from: number, tag: number, body: Uint8Array): void {
    const o = this.options;
    if (o.disk.dropsReplicaMessage(tag, o.journalPendingCount())) return;
    let message: ReplicaMessage;
    try {
      message = decodeReplicaMessage(tag, body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      o.nodeMetrics.onUndecodable(body.length);
      const fields = { peer: from, reason: error.message };
      o.logger.warnRateLimited(
        `replica-decode:${from}`,
        10_000,
        'Malformed replica message',
        fields,
      );
      return;
    }
    o.nodeMetrics.onReceive(message, body.length);
    if (timelineOn) markReceive(message, from);
    if (message.replica !== from) {
      o.nodeMetrics.onRejected('sender_mismatch');
      const fields = { peer: from, claimed: message.replica };
      o.logger.warnRateLimited(`replica-spoof:${from}`, 10_000, 'Replica message sender', fields);
      return;
    }
    logReplicaRejections(o.logger, from, o.deliver(message));
  }

  private encodeOnce(message: ReplicaMessage): { tag: number; body: Uint8Array } {
    if (this.lastEncoded?.message !== message) {
      this.lastEncoded = { message, ...encodeReplicaMessage(message) };
    }
    return this.lastEncoded;
  }
}

/** The request timeline's marks of a message leaving (timeline.ts; benchmarks only). */
function markSend(message: ReplicaMessage, target: number): void {
  if (message.kind === 'prepare') mark('send_prepare', message.prepare.header.op, target);
  else if (message.kind === 'prepare_ok') mark('send_prepare_ok', message.op, target);
  else if (message.kind === 'commit') mark('send_commit', message.commit, target);
}

/** The request timeline's marks of a message arriving. */
function markReceive(message: ReplicaMessage, from: number): void {
  if (message.kind === 'prepare') mark('prepare_in', message.prepare.header.op, from);
  else if (message.kind === 'prepare_ok') mark('prepare_ok_in', message.op, from);
}

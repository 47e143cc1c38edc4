// A fault-injecting TCP proxy for real-process tests: it listens on a loopback port, forwards
// every accepted connection to a target, and on command breaks the path in the ways a network
// does. It knows the framing of net/frame.ts, so a fault can be aimed at a message boundary
// ("drop the first reply the server sends, then close both sides"); bytes that are not frames
// pass through untouched.
//
// Faults:
//   cutAll()      closes every open connection now, both sides (new ones are still accepted);
//   stall()       stops forwarding in both directions; bytes are held, in order, until heal();
//   partition()   cutAll() and then closes every new connection at once, until heal();
//   onFrame(...)  a rule on one direction's frames: drop a frame, drop it and close both sides,
//                 forward it and then close, or stall from it on;
//   heal()        forwards what was held, accepts connections again and removes every rule.
//
// Invariants: bytes are forwarded in the order they arrived and never altered; a frame is either
// forwarded whole or not at all; a frame is shown to observers and rules once, even if it is
// held by a stall and forwarded later. The proxy is general (client links now, replica links
// later): it decodes frame boundaries with FrameDecoder but never the messages inside them.

import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { assert } from '../core/assert.js';
import { FrameDecoder, frameHeaderSizeBytes } from '../net/frame.js';

/** Which way bytes flow: from the accepted side to the target, or back. */
export type ProxyDirection = 'to_server' | 'to_client';

export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

/** One whole frame passing through the proxy. */
export interface ProxyFrame {
  /** The proxied connection (1, 2, 3... in order of acceptance). */
  readonly connectionId: number;
  readonly direction: ProxyDirection;
  /** The frame's index among the frames of its direction on its connection, from 0. */
  readonly index: number;
  readonly kind: number;
  readonly body: Uint8Array;
}

/**
 * What a matching rule does with the frame:
 *   drop               the frame is not forwarded; the connection stays open (a lost message);
 *   drop_and_close     the frame is not forwarded and both sides are closed at once;
 *   forward_and_close  the frame is forwarded, then both sides are closed;
 *   stall              the frame and everything after it in that direction is held until heal().
 */
export type FaultAction = 'drop' | 'drop_and_close' | 'forward_and_close' | 'stall';

export interface FaultRule {
  readonly direction: ProxyDirection;
  readonly match: (frame: ProxyFrame) => boolean;
  readonly action: FaultAction;
  /** Fire on the first matching frame only, then retire (default true). */
  readonly once?: boolean;
}

/** A rule in force: its firings can be awaited, and it can be withdrawn. */
export interface ArmedRule {
  /** Resolves with the first frame the rule fired on. */
  readonly fired: Promise<ProxyFrame>;
  /** How many frames the rule has fired on. */
  readonly firedCount: number;
  cancel(): void;
}

export interface FaultProxyOptions {
  readonly target: ProxyTarget;
  /** Where to listen (default 127.0.0.1, port 0: any free port). */
  readonly host?: string;
  readonly port?: number;
  /** Parse frames (default true). Without it, frame rules and observers see nothing. */
  readonly framed?: boolean;
}

/** Bounds (HOUSE_RULES §7): a test proxy still must not grow without limit. */
export const faultProxyLimits = {
  /** Connections proxied at once. */
  connectionCountMax: 1024,
  /** Rules in force at once. */
  ruleCountMax: 256,
  /** Bytes held per direction of one connection by a stall before the connection is cut. */
  heldBytesMax: 64 * 1024 * 1024,
} as const;

interface RuleState {
  readonly rule: FaultRule;
  readonly once: boolean;
  firedCount: number;
  resolveFired: (frame: ProxyFrame) => void;
}

/** The proxy's decisions, as the pipes need them. */
interface PipeHost {
  readonly framed: boolean;
  isStalled(): boolean;
  judge(frame: ProxyFrame): FaultAction | 'forward';
}

/** One direction of one proxied connection. */
class Pipe {
  private decoder: FrameDecoder | null;
  /**
   * Raw bytes given to the decoder and not yet forwarded, dropped or held, as the chunks they
   * arrived in; joined only when a frame completes, so a large frame costs one copy.
   */
  private pendingChunks: Buffer[] = [];
  private held: Buffer[] = [];
  private heldBytes = 0;
  private stalledByRule = false;
  /** Index the next parsed frame gets. */
  private frameIndexNext = 0;
  /** Frames already shown to observers and rules (replayed frames are not shown again). */
  private framesJudged = 0;
  private sourceEnded = false;
  private waitingForDrain = false;

  constructor(
    private readonly link: Link,
    readonly direction: ProxyDirection,
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly host: PipeHost,
  ) {
    this.decoder = host.framed ? new FrameDecoder() : null;
    from.on('data', (chunk: Buffer) => this.onData(chunk));
    from.on('end', () => this.onEnd());
  }

  get isHolding(): boolean {
    return this.stalledByRule || this.held.length > 0;
  }

  onData(chunk: Buffer): void {
    if (this.link.closed) return;
    if (this.stalledByRule || this.host.isStalled() || this.held.length > 0) {
      this.hold(chunk);
      return;
    }
    if (this.decoder === null) {
      this.write(chunk);
      return;
    }
    this.pendingChunks.push(chunk);
    const { frames, error } = this.decoder.push(chunk);
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i];
      assert(frame !== undefined, 'frame index within the batch');
      if (!this.onFrame(frame.kind, frame.body)) return;
    }
    if (error !== null) {
      // Not (or no longer) a framed stream: pass the rest through as plain bytes.
      this.decoder = null;
      const rest = this.takePending();
      if (rest.length > 0) this.write(rest);
    }
  }

  /** Releases held bytes (after heal()), re-parsing them; a new stall keeps the rest held. */
  release(): void {
    this.stalledByRule = false;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (let i = 0; i < held.length; i++) {
      const chunk = held[i];
      assert(chunk !== undefined, 'held chunk index');
      this.onData(chunk);
      if (this.link.closed) return;
      if (this.isHolding) {
        for (const rest of held.slice(i + 1)) this.hold(rest);
        return;
      }
    }
    if (this.sourceEnded) this.to.end();
  }

  /** The source half-closed: pass the end on once nothing is held. */
  private onEnd(): void {
    this.sourceEnded = true;
    if (!this.isHolding && !this.link.closed) this.to.end();
  }

  /** Handles one decoded frame; returns false when processing of this chunk must stop. */
  private onFrame(kind: number, body: Uint8Array): boolean {
    const sizeBytes = frameHeaderSizeBytes + body.length;
    const pending = this.takePending();
    assert(pending.length >= sizeBytes, 'a decoded frame is in the pending bytes');
    const raw = pending.subarray(0, sizeBytes);
    const index = this.frameIndexNext;
    this.frameIndexNext += 1;
    let action: FaultAction | 'forward' = 'forward';
    if (index >= this.framesJudged) {
      this.framesJudged = index + 1;
      const frame = { connectionId: this.link.id, direction: this.direction, index, kind, body };
      action = this.host.judge(frame);
    }
    if (action === 'stall') {
      // Hold this frame and every byte after it; a fresh decoder re-parses them on release.
      this.stalledByRule = true;
      this.hold(pending);
      this.decoder = new FrameDecoder();
      this.frameIndexNext = index;
      return false;
    }
    if (pending.length > sizeBytes) this.pendingChunks.push(pending.subarray(sizeBytes));
    if (action === 'forward' || action === 'forward_and_close') this.write(raw);
    if (action === 'drop_and_close') this.link.destroy();
    if (action === 'forward_and_close') this.link.endAfterFlush(this.to);
    return action === 'forward' || action === 'drop';
  }

  /** Removes and returns every pending byte, joined. */
  private takePending(): Buffer {
    const chunks = this.pendingChunks;
    this.pendingChunks = [];
    return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks);
  }

  private hold(chunk: Buffer): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > faultProxyLimits.heldBytesMax) this.link.destroy();
  }

  private write(bytes: Buffer): void {
    if (this.link.closed) return;
    if (!this.to.write(bytes) && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.from.pause();
      this.to.once('drain', () => {
        this.waitingForDrain = false;
        this.from.resume();
      });
    }
  }
}

/** One accepted connection and its connection to the target. */
class Link {
  closed = false;
  readonly pipes: Pipe[];

  constructor(
    readonly id: number,
    private readonly client: Socket,
    private readonly server: Socket,
    host: PipeHost,
    private readonly onClosed: (link: Link) => void,
  ) {
    for (const [socket, other] of [
      [client, server],
      [server, client],
    ] as const) {
      socket.setNoDelay(true);
      socket.on('error', () => this.destroy());
      socket.on('close', () => this.onSocketClosed(other));
    }
    this.pipes = [
      new Pipe(this, 'to_server', client, server, host),
      new Pipe(this, 'to_client', server, client, host),
    ];
  }

  /**
   * One side closed. If the other side was told to end (a half-close passed on), let it flush
   * and close by itself, within a second; otherwise close it now.
   */
  private onSocketClosed(other: Socket): void {
    if (this.closed) return;
    if (!other.writableEnded) {
      this.destroy();
      return;
    }
    other.once('close', () => this.destroy());
    setTimeout(() => this.destroy(), 1000).unref();
  }

  /** Closes both sides at once; bytes not yet forwarded are lost. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.server.destroy();
    this.onClosed(this);
  }

  /** Stops forwarding, lets `flushed` finish writing what it was given, then closes both. */
  endAfterFlush(flushed: Socket): void {
    if (this.closed) return;
    this.closed = true;
    const other = flushed === this.client ? this.server : this.client;
    other.destroy();
    flushed.end(() => flushed.destroy());
    setTimeout(() => flushed.destroy(), 1000).unref();
    this.onClosed(this);
  }
}

export class FaultProxy implements PipeHost {
  readonly framed: boolean;
  private target: ProxyTarget;
  private readonly links = new Set<Link>();
  private rules: RuleState[] = [];
  private readonly observers = new Set<(frame: ProxyFrame) => void>();
  private stalled = false;
  private refusing = false;
  private linkIdNext = 1;
  private acceptedTotal = 0;

  private constructor(
    private readonly server: Server,
    options: FaultProxyOptions,
  ) {
    this.target = options.target;
    this.framed = options.framed ?? true;
  }

  /** Starts a proxy listening on options.host:options.port (default 127.0.0.1:0). */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    // Half-open sockets: an end from one side is passed on by the pipes, after the bytes before it.
    const server = createServer({ allowHalfOpen: true });
    const proxy = new FaultProxy(server, options);
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  /** The port the proxy listens on. */
  get port(): number {
    const bound = this.server.address() as AddressInfo | null;
    assert(bound !== null && typeof bound === 'object', 'proxy is listening');
    return bound.port;
  }

  /** host:port to give clients instead of the target's address. */
  get address(): string {
    const bound = this.server.address() as AddressInfo;
    return `${bound.address}:${this.port}`;
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.links.size;
  }

  /** Connections accepted since the start (refused ones included). */
  get acceptedCount(): number {
    return this.acceptedTotal;
  }

  /** Forward new connections to another target (e.g. a server restarted on another port). */
  retarget(target: ProxyTarget): void {
    this.target = target;
  }

  /** Closes every open connection now, both sides. New connections are still accepted. */
  cutAll(): void {
    for (const link of [...this.links]) link.destroy();
  }

  /** Stops forwarding in both directions on every connection; bytes are held until heal(). */
  stall(): void {
    this.stalled = true;
  }

  /** Cuts every connection and refuses new ones until heal(). */
  partition(): void {
    this.refusing = true;
    this.cutAll();
  }

  /** Ends every fault: held bytes are forwarded, connections accepted, rules removed. */
  heal(): void {
    this.stalled = false;
    this.refusing = false;
    this.rules = [];
    for (const link of [...this.links]) {
      for (const pipe of link.pipes) pipe.release();
    }
  }

  /** Adds a rule on frames; rules are tried in the order they were added. */
  onFrame(rule: FaultRule): ArmedRule {
    assert(this.rules.length < faultProxyLimits.ruleCountMax, 'too many proxy rules');
    let resolveFired: (frame: ProxyFrame) => void = () => undefined;
    const fired = new Promise<ProxyFrame>((resolve) => {
      resolveFired = resolve;
    });
    const state: RuleState = { rule, once: rule.once ?? true, firedCount: 0, resolveFired };
    this.rules.push(state);
    return {
      fired,
      get firedCount() {
        return state.firedCount;
      },
      cancel: () => {
        this.rules = this.rules.filter((candidate) => candidate !== state);
      },
    };
  }

  /** Calls `observer` with every frame in both directions; returns a function to stop. */
  observe(observer: (frame: ProxyFrame) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.rules = [];
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  isStalled(): boolean {
    return this.stalled;
  }

  judge(frame: ProxyFrame): FaultAction | 'forward' {
    for (const observer of this.observers) observer(frame);
    const state = this.rules.find((candidate) => {
      return candidate.rule.direction === frame.direction && candidate.rule.match(frame);
    });
    if (state === undefined) return 'forward';
    state.firedCount += 1;
    state.resolveFired(frame);
    if (state.once) this.rules = this.rules.filter((candidate) => candidate !== state);
    return state.rule.action;
  }

  private accept(client: Socket): void {
    this.acceptedTotal += 1;
    if (this.refusing || this.links.size >= faultProxyLimits.connectionCountMax) {
      client.destroy();
      return;
    }
    const { host, port } = this.target;
    const server = createConnection({ host, port, allowHalfOpen: true });
    const link = new Link(this.linkIdNext, client, server, this, (closed) => {
      this.links.delete(closed);
    });
    this.linkIdNext += 1;
    this.links.add(link);
  }
}

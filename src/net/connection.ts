// One TCP connection carrying framed client messages. Outgoing frames written in the same tick
// are coalesced into one socket write (cork now, uncork on the next tick). The send queue is
// bounded: a peer that stops reading until more than connectionSendQueueBytesMax is queued is
// considered stalled and is disconnected, so one slow client cannot exhaust the node's memory.
// A framing error is answered with an `error` message carrying its stable code, then the
// connection is closed: a byte stream cannot be resynchronised after a bad frame.
// The owner (client_port.ts) learns after every read how many frames completed and what the
// decoder still holds (onReceived, bufferedCostBytes), for its timeouts and memory budget; a
// closing connection drops what its decoder held at once, not when the socket finally closes.

import type { Socket } from 'node:net';
import { constants } from '../core/constants.js';
import { DecodeError } from '../core/binary.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { FrameDecoder } from './frame.js';
import { bufferedCostBytes } from './frame_budget.js';
import { TickCork } from './tick_cork.js';
import type { Frame, FrameError } from './frame.js';
import { decodeMessage, encodeMessageFrame } from './client_protocol.js';
import type { ClientMessage } from './client_protocol.js';

export interface ConnectionHandlers {
  onMessage(connection: Connection, message: ClientMessage): void;
  /** A protocol problem from the peer: logged by the owner; the connection is closing. */
  onProtocolError(connection: Connection, code: ErrorCode, message: string): void;
  onClose(connection: Connection): void;
  /** After each read: `frameCount` frames completed; the decoder may hold part of the next. */
  onReceived?(connection: Connection, frameCount: number): void;
}

let connectionIdNext = 1;

export class Connection {
  readonly id: number;
  readonly remoteAddress: string;
  private readonly decoder: FrameDecoder;
  private readonly cork: TickCork;
  private closing = false;

  /**
   * `adopted` hands over a decoder that already read the first frames of this socket (the node
   * reads the first frame to tell clients from replicas); those frames are delivered first.
   */
  constructor(
    private readonly socket: Socket,
    private readonly handlers: ConnectionHandlers,
    private readonly sendQueueBytesMax: number = constants.connectionSendQueueBytesMax,
    adopted?: { decoder: FrameDecoder; frames: readonly Frame[] },
  ) {
    this.id = connectionIdNext++;
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.cork = new TickCork(socket);
    this.decoder = adopted?.decoder ?? new FrameDecoder();
    if (adopted !== undefined) {
      const frames = adopted.frames;
      process.nextTick(() => this.onFrames(frames, this.decoder.error));
    }
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closing = true;
      this.decoder.release();
      handlers.onClose(this);
    });
  }

  get closed(): boolean {
    return this.closing;
  }

  /** What the decoder holds of frames not yet complete, as the frame budget counts it. */
  get bufferedCostBytes(): number {
    return bufferedCostBytes(this.decoder);
  }

  private onData(data: Buffer): void {
    if (this.closing) return;
    const { frames, error } = this.decoder.push(data);
    this.onFrames(frames, error);
    if (!this.closing) this.handlers.onReceived?.(this, frames.length);
  }

  private onFrames(frames: readonly Frame[], error: FrameError | null): void {
    for (const frame of frames) {
      if (this.closing) return;
      let message: ClientMessage;
      try {
        message = decodeMessage(frame.kind, frame.body);
      } catch (decodeError) {
        if (!(decodeError instanceof DecodeError)) throw decodeError;
        this.fail(errorCodes.frame_malformed, `malformed message: ${decodeError.message}`);
        return;
      }
      this.handlers.onMessage(this, message);
    }
    if (error !== null) this.fail(error.code, error.message);
  }

  /** Answers a protocol error with its code and closes the connection. */
  fail(code: ErrorCode, message: string): void {
    if (this.closing) return;
    this.handlers.onProtocolError(this, code, message);
    this.closeWith(code, message);
  }

  /** Sends a connection-scoped error (a limit or timeout, not the peer's fault) and closes. */
  closeWith(code: ErrorCode, message: string): void {
    if (this.closing) return;
    this.send({
      kind: 'error',
      error: { scope: { kind: 'connection' }, code, message, leaderHint: -1 },
    });
    this.close();
  }

  send(message: ClientMessage): void {
    if (this.closing) return;
    if (this.socket.writableLength > this.sendQueueBytesMax) {
      this.destroy();
      return;
    }
    this.cork.hold();
    this.socket.write(encodeMessageFrame(message));
  }

  /** Flushes what is queued, then closes. */
  close(): void {
    this.closing = true;
    this.decoder.release();
    this.cork.release();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  destroy(): void {
    this.closing = true;
    this.decoder.release();
    this.socket.destroy();
  }
}

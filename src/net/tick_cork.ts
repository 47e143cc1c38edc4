// Frames written to a socket in one tick leave in one write: the first write of a tick corks the
// socket and the next tick uncorks it. Node client connections, the replica bus, the SDK and
// the test client all send this way; a writev of many frames costs about what one write does.
//
// Invariant: a socket is corked by this at most once at a time, so one uncork always undoes it.

import type { Socket } from 'node:net';

export class TickCork {
  private corked = false;

  constructor(private readonly socket: Socket) {}

  /** Corks the socket until the next tick, unless this tick already did. Call before writing. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => this.release());
  }

  /** Uncorks now, if corked (before closing, so what is queued goes first). */
  release(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }
}

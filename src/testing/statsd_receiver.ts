// A loopback StatsD "daemon" for tests and benchmarks: a UDP socket that keeps every line it
// receives and parses it as `name:value|type[|@rate][|#tags]`, the plain StatsD format.
//
// Invariants: at most `lineCountMax` lines are kept (older ones are dropped and counted); a line
// that does not parse is kept in `malformed` (bounded the same way) so a test can fail on it.

import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './wait_until.js';

export interface StatsdLine {
  readonly name: string;
  readonly value: number;
  /** c, g, ms, h, s, d ... as sent. */
  readonly type: string;
  /** The sample rate after `|@`, 1 when absent. */
  readonly sampleRate: number;
  readonly raw: string;
}

const lineShape =
  /^([^:|@#\s]+):(-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)\|([a-z]+)(?:\|@([0-9.]+))?$/;

/** Parses one plain StatsD line, or null when it is not one. */
export function parseStatsdLine(raw: string): StatsdLine | null {
  const match = lineShape.exec(raw);
  if (match === null) return null;
  const [, name = '', value = '', type = '', rate] = match;
  const sampleRate = rate === undefined ? 1 : Number(rate);
  if (!(sampleRate > 0 && sampleRate <= 1)) return null;
  return { name, value: Number(value), type, sampleRate, raw };
}

export class StatsdReceiver {
  readonly lines: StatsdLine[] = [];
  readonly malformed: string[] = [];
  datagramCount = 0;
  droppedLineCount = 0;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly socket: Socket,
    private readonly lineCountMax: number,
  ) {}

  static async start(lineCountMax = 100_000): Promise<StatsdReceiver> {
    const socket = createSocket('udp4');
    const receiver = new StatsdReceiver(socket, lineCountMax);
    socket.on('message', (message) => receiver.onDatagram(message.toString('utf8')));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return receiver;
  }

  /** host:port, as [telemetry] statsd_address takes it. */
  get address(): string {
    const address = this.socket.address() as AddressInfo;
    return `127.0.0.1:${address.port}`;
  }

  /** Resolves once `check()` is true, re-checked after each datagram; rejects after timeoutMs. */
  async waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return waitUntil(this.waiters, check, timeoutMs, `StatsD receiver: ${what}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onDatagram(text: string): void {
    this.datagramCount += 1;
    for (const raw of text.split('\n')) {
      if (raw === '') continue;
      const line = parseStatsdLine(raw);
      if (line === null) this.keep(this.malformed, raw);
      else this.keep(this.lines, line);
    }
    for (const wake of [...this.waiters]) wake();
  }

  private keep<T>(into: T[], item: T): void {
    into.push(item);
    if (into.length > this.lineCountMax) {
      into.shift();
      this.droppedLineCount += 1;
    }
  }
}

// The instruments of the client port's limits (issue 14; src/net/client_port.ts and
// src/node/session_admission.ts feed them through the node): how many client connections are
// open, how many bytes incomplete frames hold against the budget, how many connections were
// refused or closed for a limit, and how many session registrations were refused. Every label
// value comes from a closed list below and every series exists from start-up at 0, so `rate()`
// and alerts work before the first refusal. Documented in docs/metrics.md.

import type { Registry } from 'prom-client';
import { CounterFamily, GaugeFamily } from './metric_cells.js';
import type { CounterCell, ReadCell } from './metric_cells.js';

/** `reason` of kmb_client_connections_rejected_total. */
export const clientConnectionRejectReasons = ['connection_limit', 'handshake_limit'] as const;
/** `reason` of kmb_client_connections_closed_total. */
export const clientConnectionCloseReasons = [
  'handshake_timeout',
  'idle_timeout',
  'frame_timeout',
  'frame_buffer_budget',
] as const;
/** `reason` of kmb_client_sessions_refused_total. */
export const clientSessionRefusalReasons = ['sessions_per_connection', 'register_rate'] as const;

type Cells<T extends readonly string[]> = Readonly<Record<T[number], CounterCell>>;

function counterCells<T extends readonly string[]>(family: CounterFamily, reasons: T): Cells<T> {
  const cells = {} as Record<T[number], CounterCell>;
  for (const reason of reasons) cells[reason as T[number]] = family.cell({ reason });
  return cells;
}

export class ClientPortMetrics {
  /** kmb_client_connections: client connections open (read at scrape time). */
  readonly connections: ReadCell;
  /** kmb_client_frame_buffer_bytes: bytes held for incomplete frames (read at scrape time). */
  readonly frameBufferBytes: ReadCell;
  /** kmb_client_frame_buffer_budget_bytes: the bound of the above ([server] key). */
  readonly frameBufferBudgetBytes: ReadCell;
  readonly rejected: Cells<typeof clientConnectionRejectReasons>;
  readonly closed: Cells<typeof clientConnectionCloseReasons>;
  readonly sessionsRefused: Cells<typeof clientSessionRefusalReasons>;

  constructor(registry: Registry) {
    const gauge = (name: string, help: string): ReadCell =>
      new GaugeFamily({ registry, name, help }).reader();
    const counter = (name: string, help: string): CounterFamily =>
      new CounterFamily({ registry, name, help, labelNames: ['reason'] });
    this.connections = gauge('kmb_client_connections', 'Client connections open.');
    this.frameBufferBytes = gauge(
      'kmb_client_frame_buffer_bytes',
      'Bytes held for incomplete frames across all connections of the client port.',
    );
    this.frameBufferBudgetBytes = gauge(
      'kmb_client_frame_buffer_budget_bytes',
      'The bound of kmb_client_frame_buffer_bytes ([server] frame_buffer_budget_bytes).',
    );
    this.rejected = counterCells(
      counter(
        'kmb_client_connections_rejected_total',
        'New connections refused with an error frame, by the limit that refused them.',
      ),
      clientConnectionRejectReasons,
    );
    this.closed = counterCells(
      counter(
        'kmb_client_connections_closed_total',
        'Connections the node closed for a timeout or the frame buffer budget, by reason.',
      ),
      clientConnectionCloseReasons,
    );
    this.sessionsRefused = counterCells(
      counter(
        'kmb_client_sessions_refused_total',
        'Session registrations refused by a per-connection limit, by reason.',
      ),
      clientSessionRefusalReasons,
    );
  }
}

// The instruments of the ops HTTP port itself (ops_server.ts, ops_connections.ts): how many
// connections it holds, how many it shed or refused at its cap, and how many profiles were
// cancelled because their client went away. Error answers with a stable code (403
// KMB_ERR_FORBIDDEN, 429 KMB_ERR_PROFILE_BUSY, 503 KMB_ERR_BACKPRESSURE, and 404/405/500) are
// counted in kmb_errors_total{code}, the node's one error counter.
//
// Invariants: every series exists from creation (at 0), label values come from closed sets,
// and updating a cell never allocates (metric_cells.ts).

import type { Registry } from 'prom-client';
import { assert } from '../core/assert.js';
import { errorCodes, type ErrorCode } from '../core/errors.js';
import { CounterFamily, GaugeFamily, type CounterCell, type ReadCell } from './metric_cells.js';
import type { ProfileKind } from './profiler.js';

export interface OpsInstruments {
  /** kmb_ops_connections: connections open on the ops port; bound by the ops server. */
  readonly connections: ReadCell;
  /** kmb_ops_connections_shed_total: connections closed at the cap to admit a new one. */
  readonly connectionsShedTotal: CounterCell;
  /** kmb_ops_connections_refused_total: new connections refused at the cap (all busy). */
  readonly connectionsRefusedTotal: CounterCell;
  /** kmb_ops_profiles_cancelled_total{kind}: profiles stopped because their client left. */
  readonly profilesCancelledTotal: Readonly<Record<ProfileKind, CounterCell>>;
  /** The kmb_errors_total cell of one code. */
  errorsTotal(code: ErrorCode): CounterCell;
}

/**
 * Registers the ops instruments in `registry`. `errorsTotal` is the node's kmb_errors_total;
 * without it (an ops server on its own, as in tests) a private one is registered here.
 */
export function createOpsInstruments(
  registry: Registry,
  errorsTotal?: (code: ErrorCode) => CounterCell,
): OpsInstruments {
  const family = (name: string, help: string) => ({ registry, name, help });
  const cancelled = new CounterFamily({
    ...family(
      'kmb_ops_profiles_cancelled_total',
      'CPU profiles and heap snapshots stopped because their client closed the connection.',
    ),
    labelNames: ['kind'],
  });
  return {
    connections: new GaugeFamily(
      family('kmb_ops_connections', 'Connections open on the ops HTTP port.'),
    ).reader(),
    connectionsShedTotal: new CounterFamily(
      family(
        'kmb_ops_connections_shed_total',
        'Ops HTTP connections with no request in progress (idle, keep-alive or still sending ' +
          'headers) closed at the connection cap to admit a new one.',
      ),
    ).cell(),
    connectionsRefusedTotal: new CounterFamily(
      family(
        'kmb_ops_connections_refused_total',
        'New ops HTTP connections refused at the connection cap because every open one had a ' +
          'request in progress.',
      ),
    ).cell(),
    profilesCancelledTotal: {
      cpu: cancelled.cell({ kind: 'cpu' }),
      heap: cancelled.cell({ kind: 'heap' }),
    },
    errorsTotal: errorsTotal ?? privateErrorCells(registry),
  };
}

function privateErrorCells(registry: Registry): (code: ErrorCode) => CounterCell {
  const family = new CounterFamily({
    registry,
    name: 'kmb_errors_total',
    help: 'Errors answered or logged, by stable error code.',
    labelNames: ['code'],
  });
  const cells = new Map<ErrorCode, CounterCell>();
  for (const code of Object.values(errorCodes)) cells.set(code, family.cell({ code }));
  return (code) => {
    const cell = cells.get(code);
    assert(cell !== undefined, `unknown error code ${code}`);
    return cell;
  };
}

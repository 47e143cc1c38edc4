// The kernel's State: every tenant and stream, derived by applying the committed log in order
// (DESIGN.md §5). It is a plain data structure; the rules that change it live in tenants.ts,
// streams.ts and events.ts, and apply.ts dispatches to them.
//
// For performance the State is MUTATED IN PLACE by apply(). That is still deterministic: the
// same commands applied in the same order to fresh states give equal states (stateDigest proves
// it). Every command is all-or-nothing: it validates everything first and mutates only once it
// cannot fail, so a rejected command leaves the State exactly as it was.
//
// Invariants:
//   - tenant ids are 1, 2, 3... in commit order; tenantIdNext is one past the last;
//   - stream ids are 1, 2, 3... across all tenants in commit order; streamIdNext likewise;
//   - tenant names are unique; stream names are unique within their tenant;
//   - every stream's tenant exists, and the stream is listed under it by name;
//   - Map iteration order is insertion order, which is id order, so listings are ordered by id.
// Readers get Tenant and Stream as readonly views of the live records: never mutate them.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { asStreamId, asTenantId } from '../core/types.js';
import type { Offset, StreamId, TenantId, TimestampUs } from '../core/types.js';
import type { DataClass } from './command.js';

export interface Tenant {
  readonly id: TenantId;
  readonly name: string;
  readonly createdAtUs: TimestampUs;
  readonly sealed: boolean;
}

export interface Stream {
  readonly id: StreamId;
  readonly tenantId: TenantId;
  readonly name: string;
  readonly dataClass: DataClass;
  readonly createdAtUs: TimestampUs;
  /** The offset the next appended event will get; also the number of events in the stream. */
  readonly nextOffset: Offset;
  /** The chain link of the last event, or the stream's genesis when it is empty (chain.ts). */
  readonly chainHead: Uint8Array;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type TenantRecord = Mutable<Tenant>;
export type StreamRecord = Mutable<Stream>;

/** Bounds on the state's size. Replicas of one cluster must use the same limits. */
export interface StateLimits {
  readonly tenantCountMax: number;
  readonly streamCountMax: number;
}

export interface State {
  readonly limits: StateLimits;
  /** By id, in id order. */
  readonly tenants: Map<TenantId, TenantRecord>;
  readonly tenantIdsByName: Map<string, TenantId>;
  /** By id across all tenants, in id order. */
  readonly streams: Map<StreamId, StreamRecord>;
  /** Per tenant: stream name → id, in id order. Every tenant has an entry. */
  readonly streamIdsByTenant: Map<TenantId, Map<string, StreamId>>;
  tenantIdNext: TenantId;
  streamIdNext: StreamId;
  /** Tenants with sealed = false. */
  activeTenantCount: number;
}

export const defaultStateLimits: StateLimits = {
  tenantCountMax: constants.tenantCountMax,
  streamCountMax: constants.streamCountMax,
};

/** An empty state: no tenants, no streams; the first ids handed out will be 1. */
export function createState(limits: StateLimits = defaultStateLimits): State {
  assert(Number.isSafeInteger(limits.tenantCountMax), 'tenantCountMax must be an integer');
  assert(limits.tenantCountMax >= 0, 'tenantCountMax must not be negative');
  assert(Number.isSafeInteger(limits.streamCountMax), 'streamCountMax must be an integer');
  assert(limits.streamCountMax >= 0, 'streamCountMax must not be negative');
  return {
    limits: { ...limits },
    tenants: new Map(),
    tenantIdsByName: new Map(),
    streams: new Map(),
    streamIdsByTenant: new Map(),
    tenantIdNext: asTenantId(1),
    streamIdNext: asStreamId(1),
    activeTenantCount: 0,
  };
}

/**
 * Checks the cross-structure invariants above. It walks the whole state, so it is for tests
 * and the simulator, not for every apply().
 */
export function stateInvariants(state: State): void {
  assert(state.tenants.size === state.tenantIdsByName.size, 'tenant name index out of sync');
  assert(state.tenants.size === state.streamIdsByTenant.size, 'stream index per tenant missing');
  assert(state.tenantIdNext === state.tenants.size + 1, 'tenant ids must be dense from 1');
  assert(state.streamIdNext === state.streams.size + 1, 'stream ids must be dense from 1');
  let active = 0;
  for (const [id, tenant] of state.tenants) {
    assert(tenant.id === id, 'tenant keyed by its id');
    assert(state.tenantIdsByName.get(tenant.name) === id, 'tenant name maps to its id');
    if (!tenant.sealed) active += 1;
  }
  assert(active === state.activeTenantCount, 'activeTenantCount out of sync');
  let indexed = 0;
  for (const [tenantId, byName] of state.streamIdsByTenant) {
    for (const [name, streamId] of byName) {
      const stream = state.streams.get(streamId);
      assert(stream !== undefined, 'indexed stream exists');
      assert(stream.tenantId === tenantId && stream.name === name, 'stream index matches');
      indexed += 1;
    }
  }
  assert(indexed === state.streams.size, 'every stream is indexed under its tenant');
}

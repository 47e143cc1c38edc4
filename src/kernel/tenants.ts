// Tenants: creating them, and the pure queries the node uses to read them. A tenant owns every
// other object; no command or read crosses tenants (DESIGN.md §5).
//
// create_tenant checks, in this order (the first failure is the result):
//   audit → invalid_argument; name → invalid_argument; name taken → tenant_exists;
//   tenant count at tenantCountMax → limit_exceeded.
// Only then does it mutate the state: the tenant gets the next id (ids from 1, in commit order)
// and the prepare's timestamp as its creation time.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { asTenantId } from '../core/types.js';
import type { TenantId } from '../core/types.js';
import type { Command } from './command.js';
import { errorResult, rejected } from './outcome.js';
import type { ApplyOutcome, CommandMeta } from './outcome.js';
import type { State, Tenant, TenantRecord } from './state.js';
import { checkAudit, checkName } from './validate.js';

type CreateTenant = Extract<Command, { kind: 'create_tenant' }>;

export function applyCreateTenant(
  state: State,
  command: CreateTenant,
  meta: CommandMeta,
): ApplyOutcome {
  const invalid =
    checkAudit(command.audit) ??
    checkName(command.name, constants.tenantNameBytesMax, 'tenant name');
  if (invalid !== null) return rejected(invalid);
  if (state.tenantIdsByName.has(command.name)) {
    return rejected(errorResult('tenant_exists', `tenant ${JSON.stringify(command.name)} exists`));
  }
  if (state.tenants.size >= state.limits.tenantCountMax) {
    const max = state.limits.tenantCountMax;
    return rejected(errorResult('limit_exceeded', `tenant count is at its maximum of ${max}`));
  }

  const tenant: TenantRecord = {
    id: state.tenantIdNext,
    name: command.name,
    createdAtUs: meta.timestampUs,
    sealed: false,
  };
  assert(!state.tenants.has(tenant.id), 'tenant id must be fresh');
  state.tenants.set(tenant.id, tenant);
  state.tenantIdsByName.set(tenant.name, tenant.id);
  state.streamIdsByTenant.set(tenant.id, new Map());
  state.tenantIdNext = asTenantId(tenant.id + 1);
  state.activeTenantCount += 1;
  assert(state.tenantIdNext === state.tenants.size + 1, 'tenant ids stay dense');

  const { id: tenantId, name, createdAtUs } = tenant;
  return {
    result: { status: 'ok', kind: 'create_tenant', tenantId, name, createdAtUs },
    effects: [{ kind: 'tenant_created', tenantId, name }],
  };
}

/** Every tenant, in id order (sealed ones included). */
export function tenantList(state: State): Tenant[] {
  return [...state.tenants.values()];
}

export function tenantById(state: State, tenantId: TenantId): Tenant | undefined {
  return state.tenants.get(tenantId);
}

export function tenantByName(state: State, name: string): Tenant | undefined {
  const tenantId = state.tenantIdsByName.get(name);
  return tenantId === undefined ? undefined : state.tenants.get(tenantId);
}

/** Tenants that are not sealed. */
export function activeTenantCount(state: State): number {
  assert(state.activeTenantCount >= 0, 'active tenant count is never negative');
  assert(state.activeTenantCount <= state.tenants.size, 'active tenants are tenants');
  return state.activeTenantCount;
}

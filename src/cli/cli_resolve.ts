// Turning what an operator types for --tenant and --stream into ids. Either an id or a name is
// accepted; both are looked up in the cluster's listing (list_tenants, list_streams), an id
// match first, so a name made only of digits is still found when no tenant has that id.

import { kmbError } from '../core/errors.js';
import type { Client, StreamSummary, TenantSummary } from '../client/client.js';

function idOf(reference: string): number | null {
  return /^\d+$/.test(reference) ? Number(reference) : null;
}

export async function resolveTenant(db: Client, reference: string): Promise<TenantSummary> {
  const tenants = await db.listTenants();
  const id = idOf(reference);
  const found =
    tenants.find((tenant) => tenant.tenantId === id) ??
    tenants.find((tenant) => tenant.name === reference);
  if (found === undefined) {
    throw kmbError('tenant_not_found', `no tenant has the id or name ${JSON.stringify(reference)}`);
  }
  return found;
}

export async function resolveStream(
  db: Client,
  tenant: TenantSummary,
  reference: string,
): Promise<StreamSummary> {
  const streams = await db.listStreams(tenant.tenantId);
  const id = idOf(reference);
  const found =
    streams.find((stream) => stream.streamId === id) ??
    streams.find((stream) => stream.name === reference);
  if (found === undefined) {
    const what = `the id or name ${JSON.stringify(reference)}`;
    throw kmbError('stream_not_found', `no stream in tenant ${tenant.tenantId} has ${what}`);
  }
  return found;
}

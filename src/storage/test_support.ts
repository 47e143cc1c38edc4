// Helpers shared by the storage tests (not a test file itself): chains of valid prepares, and
// temporary data directories under os.tmpdir() that are always removed.
//
// Invariant: every prepare made here is exactly what a replica would journal: contiguous ops
// from 1, each naming the checksum of the one before (op 1: the cluster's root prepare).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { constants } from '../core/constants.js';
import { makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import type { SuperblockState } from './superblock_copy.js';

export const testCluster = 0x1234_5678_9abc;

export const testSuperblockState: SuperblockState = {
  cluster: testCluster,
  clusterName: 'test',
  replica: asReplicaIndex(0),
  replicaCount: 1,
  view: asView(0),
  logView: asView(0),
  commit: asOp(0),
  clientSessionCountMax: constants.clientSessionCountMax,
};

/**
 * Prepares continuing a chain after `previous` (the root prepare when omitted), each claiming
 * one request unless `requestCounts` says otherwise.
 */
export function makeChain(
  bodies: readonly Uint8Array[],
  options: { cluster?: number; previous?: Prepare; requestCounts?: readonly number[] } = {},
): Prepare[] {
  const cluster = options.cluster ?? testCluster;
  let previous = options.previous ?? rootPrepare(cluster);
  const prepares: Prepare[] = [];
  for (const [index, body] of bodies.entries()) {
    const op = previous.header.op + 1;
    previous = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster,
        view: asView(1),
        requestCount: options.requestCounts?.[index] ?? 1,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(1_700_000_000_000_000 + op),
        parent: previous.header.checksum,
      },
      body,
    );
    prepares.push(previous);
  }
  return prepares;
}

/** `count` bodies of `sizeBytes` bytes each, filled with a pattern derived from the index. */
export function patternBodies(count: number, sizeBytes: number): Uint8Array[] {
  return Array.from({ length: count }, (_, index) => {
    const body = new Uint8Array(sizeBytes);
    for (let i = 0; i < sizeBytes; i++) body[i] = (index * 31 + i * 7 + 1) & 0xff;
    return body;
  });
}

export async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-storage-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function samePrepare(a: Prepare, b: Prepare): boolean {
  return Buffer.compare(a.headerBytes, b.headerBytes) === 0 && Buffer.compare(a.body, b.body) === 0;
}

// Test support: the configuration of a single in-process node on loopback (port 0, no ops
// endpoint, small pipeline and tables), for tests that start a KimberliteNode directly. Each test
// overrides what it is about.

import type { NodeConfig } from './node.js';

export function singleNodeConfig(dataDir: string, overrides: Partial<NodeConfig> = {}): NodeConfig {
  return {
    clusterName: 'test',
    nodeId: 0,
    peers: ['127.0.0.1:0'],
    address: '127.0.0.1:0',
    metricsAddress: null,
    dataDir,
    segmentSizeBytesMax: 64 * 1024 * 1024,
    tickMs: 10,
    heartbeatMs: 100,
    electionTimeoutMs: 1000,
    pipelinePrepareCountMax: 4,
    prepareRequestCountMax: 64,
    clientSessionCountMax: 64,
    connectionCountMax: 64,
    shutdownTimeoutMs: 2000,
    ...overrides,
  };
}

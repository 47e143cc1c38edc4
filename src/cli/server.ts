// kimberlite-server: starts one replica process. Configuration comes from flags, KMB_* env,
// a config.toml (--config or KMB_CONFIG) and defaults, in that order of precedence; with none of
// them a single node starts on 127.0.0.1:7001 with its data in ./data. --show-config prints the
// effective configuration with each value's origin and exits.
//
// Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 1 start-up or fatal runtime failure (storage
// corruption, failed fsync, address in use), 2 usage error, 78 invalid configuration.

import { Command, CommanderError } from 'commander';
import { KmbError, errorCodes } from '../core/errors.js';
import { parseHostPort, loadConfig, renderConfig } from '../node/config.js';
import type { Config, ConfigFlagName } from '../node/config.js';
import { lockDataDir } from '../node/data_dir_lock.js';
import { prepareDataDir } from '../node/data_dir_prepare.js';
import { KimberliteNode } from '../node/node.js';
import type { NodeConfig } from '../node/node.js';
import { tracingConfigOf } from '../node/node_tracing.js';
import { startTelemetryExport } from '../node/telemetry_export.js';
import { createLogger } from '../observability/logger.js';
import { missingServerNodeFlags, serverNodeFlags } from './node_flags.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { startOpsServer } from '../observability/ops_server.js';
import {
  installAssertionRecorder,
  isAssertionFailure,
  recordAssertionFailureSync,
} from '../observability/assertion_records.js';
import type { OpsServer } from '../observability/ops_server.js';

export const exitCodes = { ok: 0, failure: 1, usage: 2, config: 78 } as const;

function toNodeConfig(config: Config): NodeConfig {
  return {
    clusterName: config.cluster.name,
    nodeId: config.cluster.node_id,
    peers: config.cluster.peers,
    address: config.server.address,
    metricsAddress: config.telemetry.metrics_enabled ? config.server.metrics_address : null,
    dataDir: config.storage.data_dir,
    segmentSizeBytesMax: config.storage.segment_size_bytes,
    diskFreeBytesMin: config.storage.disk_free_bytes_min,
    tickMs: config.consensus.tick_ms,
    heartbeatMs: config.consensus.heartbeat_ms,
    electionTimeoutMs: config.consensus.election_timeout_ms,
    pipelinePrepareCountMax: config.consensus.pipeline_max,
    prepareRequestCountMax: config.consensus.batching_enabled
      ? config.consensus.batch_max_requests
      : 1,
    clientSessionCountMax: config.consensus.client_sessions_max,
    connectionCountMax: config.server.max_connections,
    clientPort: {
      idleTimeoutMs: config.server.idle_timeout_ms,
      frameTimeoutMs: config.server.frame_timeout_ms,
      frameBufferBudgetBytes: config.server.frame_buffer_budget_bytes,
    },
    sessionAdmission: {
      sessionCountMax: config.server.sessions_per_connection_max,
      registerRatePerSecond: config.server.session_registrations_per_second,
      registerBurst: config.server.session_registration_burst,
    },
    shutdownTimeoutMs: config.server.shutdown_timeout_ms,
    tracing: tracingConfigOf(config.telemetry),
  };
}

interface ServerFlags extends Partial<Record<string, string | boolean>> {
  config?: string;
  showConfig?: boolean;
  format?: boolean;
}

function parseFlags(argv: string[]): ServerFlags {
  const program = new Command('kimberlite-server')
    .description('Run one Kimberlite replica (a single node needs no configuration).')
    .option('--config <file>', 'config.toml to read (also env KMB_CONFIG)')
    .option('--show-config', 'print the effective configuration with origins and exit')
    .option('--node-id <n>', "this replica's index into --cluster-peers (default 0)")
    .option('--cluster-peers <list>', "every replica's host:port, comma-separated, in order")
    .option('--address <host:port>', 'replica and client protocol address (default 127.0.0.1:7001)')
    .option('--metrics-address <host:port>', 'ops HTTP address (default 127.0.0.1:9090)')
    .option('--data-dir <dir>', 'data directory (default ./data)')
    .option('--cluster-name <name>', 'cluster name; replicas of another name are refused')
    .option(
      '--format',
      'format --data-dir even though it holds other files (never one holding kimberlite data)',
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse(argv);
  return program.opts<ServerFlags>();
}

const flagKeys: Record<ConfigFlagName, string> = {
  'node-id': 'nodeId',
  'cluster-peers': 'clusterPeers',
  address: 'address',
  'metrics-address': 'metricsAddress',
  'data-dir': 'dataDir',
  'cluster-name': 'clusterName',
};

function fail(code: number, message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  let flags: ServerFlags;
  try {
    flags = parseFlags(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? exitCodes.ok : exitCodes.usage);
    }
    throw error;
  }
  const flagValues: Partial<Record<ConfigFlagName, string>> = {};
  for (const [flag, key] of Object.entries(flagKeys) as [ConfigFlagName, string][]) {
    const value = flags[key];
    if (typeof value === 'string') flagValues[flag] = value;
  }
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig({
      flags: flagValues,
      env: process.env,
      ...(flags.config === undefined ? {} : { configPath: flags.config }),
    });
  } catch (error) {
    if (error instanceof KmbError && error.code === errorCodes.config_invalid) {
      fail(exitCodes.config, `error: ${error.code}: ${error.message}`);
    }
    throw error;
  }
  if (flags.showConfig === true) {
    process.stdout.write(renderConfig(loaded.config, loaded.sources, loaded.origins));
    return;
  }
  await run(loaded.config, flags.format === true);
}

async function run(config: Config, format: boolean): Promise<void> {
  const nodeConfig = { ...toNodeConfig(config), format };
  let logger: Logger;
  try {
    logger = createLogger({
      defaultDirectives: config.telemetry.log_level,
      defaultFormat: config.telemetry.log_format,
      bindings: { node_id: nodeConfig.nodeId },
      module: 'kimberlite_server',
    });
  } catch (error) {
    if (error instanceof KmbError) fail(exitCodes.config, `error: ${error.code}: ${error.message}`);
    throw error;
  }
  const metrics = new Metrics({ nodeId: nodeConfig.nodeId });
  // kimberlite_assertion_failures_total: failures recorded by earlier runs, and this run's.
  metrics.assertionFailuresTotal.inc(installAssertionRecorder(nodeConfig.dataDir));
  let node: KimberliteNode | null = null;
  let stopping = false;
  logger.info('Starting node', {
    cluster_name: nodeConfig.clusterName,
    address: nodeConfig.address,
    data_dir: nodeConfig.dataDir,
    cluster_size: nodeConfig.peers.length,
  });
  const missingFlags = missingServerNodeFlags(process.execArgv);
  if (missingFlags.length > 0) {
    logger.warn(
      'Started without the V8 flags kimberlite-server expects; under write load it will collect garbage far more often',
      {
        missing_flags: missingFlags.join(' '),
        hint: `run the kimberlite-server command, or node ${serverNodeFlags.join(' ')} bin/kimberlite-server.js`,
      },
    );
  }
  const startFailed = (error: unknown): never => {
    if (isAssertionFailure(error)) recordAssertionFailureSync(nodeConfig.dataDir, error);
    const message = error instanceof Error ? error.message : String(error);
    const code = error instanceof KmbError ? error.code : errorCodes.internal;
    logger.error('Node failed to start', { code, error: message });
    return fail(exitCodes.failure, `error: ${code}: ${message}`);
  };
  // The lock comes first: nothing, not even the ops endpoint, may start for a data directory
  // that another process owns. The ops endpoint then answers 503 while the journal recovers.
  const lock = await prepareDataDir(nodeConfig.dataDir)
    .then(() =>
      lockDataDir(nodeConfig.dataDir, {
        // A LOCK file left by a process that is gone (kill -9): the OS lock was free, so it is
        // only information now; say whose it was.
        onTakeover: (owner) =>
          logger.warn('Took over the data directory from a process that is gone', {
            data_dir: nodeConfig.dataDir,
            previous_owner: owner.trim().replace(/\s+/g, ' '),
          }),
      }),
    )
    .catch(startFailed);
  const ops = await startOps(
    nodeConfig,
    config.telemetry,
    logger,
    metrics,
    () => node,
    () => stopping,
  ).catch(startFailed);
  // The node reports where its ops endpoint listens (the bound port, when 0 was configured).
  const metricsAddress = ops === null ? null : `${ops.address.host}:${ops.address.port}`;
  node = await KimberliteNode.start({
    config: { ...nodeConfig, metricsAddress },
    logger,
    metrics,
    onFatal: () => process.exit(exitCodes.failure),
  }).catch(startFailed);
  const started = node;
  const pushed = startTelemetryExport({
    telemetry: config.telemetry,
    nodeId: nodeConfig.nodeId,
    registries: () => metrics.registries,
    errorRegistry: metrics.registry,
    logger,
  });
  logger.info('Node ready', {
    address: started.address,
    metrics_address: metricsAddress,
    cluster_name: nodeConfig.clusterName,
  });
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info('Received signal', { signal });
    await started.stop();
    await pushed.stop();
    await lock.release();
    await ops?.close();
    process.exit(exitCodes.ok);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

async function startOps(
  config: NodeConfig,
  telemetry: Config['telemetry'],
  logger: Logger,
  metrics: Metrics,
  node: () => KimberliteNode | null,
  stopping: () => boolean,
): Promise<OpsServer | null> {
  if (config.metricsAddress === null) return null;
  const { host, port } = parseHostPort(config.metricsAddress);
  return startOpsServer({
    host,
    port,
    logger: logger.child({}, 'kimberlite_ops'),
    limits: {
      connectionCountMax: telemetry.ops_max_connections,
      headersTimeoutMs: telemetry.ops_headers_timeout_ms,
      requestTimeoutMs: telemetry.ops_request_timeout_ms,
      keepAliveTimeoutMs: telemetry.ops_keep_alive_timeout_ms,
    },
    debugEndpoints: telemetry.debug_endpoints,
    instruments: metrics.ops,
    provider: {
      live: () => !stopping() && (node()?.live() ?? true),
      ready: () => node()?.ready() ?? { ready: false, reason: 'recovering' },
      status: () =>
        node()?.status() ?? {
          node_id: config.nodeId,
          status: 'recovering',
          view: 0,
          commit_number: 0,
          op_number: 0,
          is_leader: false,
          cluster_size: config.peers.length,
          healthy_replicas: 0,
        },
      metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
      compatMetrics: async () => ({
        contentType: metrics.contentType,
        body: await metrics.renderCompat(),
      }),
    },
  });
}

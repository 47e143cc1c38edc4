// The node's configuration and the dependencies injected into it: what kimberlite-server builds
// from its flags, environment and config.toml (config.ts), and what tests replace (file I/O, the
// clock, telemetry).

import type { ClientId } from '../core/types.js';
import type { ClientPortLimits } from '../net/client_port.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Tracing } from '../observability/tracing.js';
import type { FileIO } from '../storage/file_io.js';
import type { NodeTracingConfig } from './node_tracing.js';
import type { SessionAdmissionLimits } from './session_admission.js';

export interface NodeConfig {
  readonly clusterName: string;
  readonly nodeId: number;
  /** Every replica's host:port in replica order; a single node lists only itself. */
  readonly peers: readonly string[];
  readonly address: string;
  /** host:port of the ops HTTP server; null to run without it. */
  readonly metricsAddress: string | null;
  readonly dataDir: string;
  readonly segmentSizeBytesMax: number;
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly pipelinePrepareCountMax: number;
  readonly prepareRequestCountMax: number;
  readonly clientSessionCountMax: number;
  readonly connectionCountMax: number;
  /** The client port's timeouts and frame buffer budget ([server]); defaults when absent. */
  readonly clientPort?: Partial<Omit<ClientPortLimits, 'connectionCountMax'>>;
  /** Per-connection session limits ([server]); defaults when absent. */
  readonly sessionAdmission?: SessionAdmissionLimits;
  readonly shutdownTimeoutMs: number;
  /** Where spans go ([telemetry] tracing_*); absent or null: tracing off. */
  readonly tracing?: NodeTracingConfig | null;
  /** [storage] disk_free_bytes_min: below it writes are refused (disk_space.ts). */
  readonly diskFreeBytesMin?: number;
  /** --format: format a non-empty directory that holds no kimberlite data (storage_startup). */
  readonly format?: boolean;
}

export interface NodeDependencies {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly io?: FileIO;
  /** Wall-clock microseconds; injected so tests can control time. */
  readonly realtimeUs?: () => number;
  /** Called for a failure that leaves the node unable to continue safely (failed fsync). */
  readonly onFatal?: (error: unknown) => void;
  /** Observes each reply just before it is written to the client (tests record ordering). */
  readonly onReply?: (clientId: ClientId, requestNumber: number, op: number | null) => void;
  /** A tracer to use instead of one built from config.tracing (tests). */
  readonly tracing?: Tracing;
  /** Tests only: perform no telemetry `event` effect, to prove that no data depends on one. */
  readonly dropTelemetryEvents?: boolean;
}

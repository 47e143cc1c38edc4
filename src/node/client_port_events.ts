// What the client port reports (src/net/client_port.ts), turned into metrics and log lines at
// the node's edge (HOUSE_RULES §10): every refusal and every close for a limit is counted by
// reason and by the code the peer was answered with, and logged at most once per interval per
// reason (target kimberlite_net, docs/logging.md). Idle closes are routine (a client that went
// quiet), so they are INFO; the others are WARN. The gauges of the port are read at scrape time.

import type { ErrorCode } from '../core/errors.js';
import { errorCodes } from '../core/errors.js';
import { constants } from '../core/constants.js';
import type {
  ClientPort,
  ClientPortCloseReason,
  ClientPortEvents,
  ClientPortLimits,
  ClientPortRejectReason,
} from '../net/client_port.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** How often (ms) each kind of client port line may be logged. */
const logIntervalMs = 10_000;

const closeLines: Readonly<
  Record<ClientPortCloseReason, { message: string; level: 'info' | 'warn'; code: ErrorCode }>
> = {
  handshake_timeout: {
    message: 'Connection sent no hello',
    level: 'warn',
    code: errorCodes.timeout,
  },
  idle_timeout: {
    message: 'Closed idle client connection',
    level: 'info',
    code: errorCodes.timeout,
  },
  frame_timeout: {
    message: 'Client frame timed out',
    level: 'warn',
    code: errorCodes.timeout,
  },
  frame_buffer_budget: {
    message: 'Frame buffer budget exceeded',
    level: 'warn',
    code: errorCodes.backpressure,
  },
};

/** The port's events as metrics and rate-limited log lines. */
export function clientPortEvents(metrics: Metrics, logger: Logger): ClientPortEvents {
  return {
    protocolError(code: ErrorCode, message: string, remote: string): void {
      metrics.errorsTotal(code).inc();
      logger.warnRateLimited(`protocol:${code}`, logIntervalMs, 'Client protocol error', {
        code,
        reason: message,
        remote,
      });
    },
    rejected(reason: ClientPortRejectReason, remote: string, message: string): void {
      metrics.clientPort.rejected[reason].inc();
      metrics.errorsTotal(errorCodes.backpressure).inc();
      logger.warnRateLimited(`refused:${reason}`, logIntervalMs, 'Client connection refused', {
        reason,
        remote,
        message,
      });
    },
    closed(reason: ClientPortCloseReason, remote: string, message: string): void {
      const line = closeLines[reason];
      metrics.clientPort.closed[reason].inc();
      metrics.errorsTotal(line.code).inc();
      const fields =
        reason === 'handshake_timeout'
          ? { remote, timeout_ms: constants.connectionHandshakeTimeoutMs }
          : { reason, remote, message };
      logger.rateLimited(line.level, `closed:${reason}`, logIntervalMs, line.message, fields);
    },
  };
}

/** Binds the port's gauges (read at scrape time). */
export function bindClientPortGauges(
  metrics: Metrics,
  port: ClientPort,
  limits: ClientPortLimits,
): void {
  metrics.clientPort.connections.bind(() => port.connectionCount);
  metrics.clientPort.frameBufferBytes.bind(() => port.bufferedBytes);
  metrics.clientPort.frameBufferBudgetBytes.bind(() => limits.frameBufferBudgetBytes);
}

/** The port's limits: [server] max_connections, and the other keys or their defaults. */
export function clientPortLimitsOf(
  connectionCountMax: number,
  configured: Partial<Omit<ClientPortLimits, 'connectionCountMax'>> = {},
): ClientPortLimits {
  return {
    connectionCountMax,
    idleTimeoutMs: configured.idleTimeoutMs ?? constants.connectionIdleTimeoutMsDefault,
    frameTimeoutMs: configured.frameTimeoutMs ?? constants.connectionFrameTimeoutMsDefault,
    frameBufferBudgetBytes:
      configured.frameBufferBudgetBytes ?? constants.frameBufferBudgetBytesDefault,
  };
}

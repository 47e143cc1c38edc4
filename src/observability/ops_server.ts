// The operations HTTP endpoint (default 127.0.0.1:9090): the health checks load balancers and
// Kubernetes probe, the node's status as JSON, and the Prometheus scrape. Plain node:http; the
// node supplies the answers through `OpsProvider`, so this file knows nothing about replicas.
//
//   GET /health        200 {"status":"ok","ready":…,"reason":…} | 503 {"status":"shutting_down",…}
//                      rstmdb's health check (`curl -f http://host:9090/health`): the process
//                      is up and serving; readiness is reported in the body, not the code
//   GET /health/live   200 {"status":"live"}  | 503 {"status":"shutting_down"}
//   GET /health/ready  200 {"status":"ready","reason":…}
//                      503 {"status":"not_ready","reason":…}
//   GET /status        200 provider.status() as JSON
//   GET /metrics       200 the Prometheus text exposition (promtool-clean names)
//   GET /metrics/compat 200 the spec's original names promtool rejects (vsr_*_ms, *_per_sec,
//                      *_count gauges, kimberlite_replication_lag_ms, ...) from the same
//                      instruments (compat_metrics.ts); 404 when the provider has none
//   GET /debug/pprof/profile?seconds=N, /debug/pprof/heap   profiles (profiler.ts); 400 for a
//                      bad query, 429 while another profile of the same kind runs
//   GET /debug/logs[?lines=N]  200 the process's newest log lines as text (log_ring.ts)
//   /debug/* from a client debug_endpoints does not admit   403 KMB_ERR_FORBIDDEN (ops_access.ts)
//   other paths        404 {"error":{"code":…,"message":…}}
//   other methods      405 (HEAD is served like GET without a body, as HTTP requires)
//
// Invariants: a handler that throws answers 500, is logged, and the server keeps serving; no
// request body is ever read into memory (small ones are drained so the connection can be
// reused, large or chunked ones end the connection after the answer); header size is bounded
// (opsServerLimits), and connections and the time a request may take are bounded by the gate
// (ops_connections.ts), which sheds idle connections at its cap so health checks are answered
// under a flood; a route's work is cancelled (its signal aborts) when the client closes the
// connection before the answer, and nothing is sent then; close() stops listening and ends
// idle keep-alive connections at once and busy ones after a short grace.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Registry } from 'prom-client';
import { errorCodes, kmbError, type ErrorCode } from '../core/errors.js';
import type { Logger } from './logger.js';
import { recentLogReply } from './log_ring.js';
import { debugPathPrefix, debugRefusal, type DebugEndpoints } from './ops_access.js';
import {
  ConnectionGate,
  opsConnectionDefaults,
  opsLimitsProblem,
  timeoutServerOptions,
  type OpsConnectionLimits,
} from './ops_connections.js';
import { createOpsInstruments, type OpsInstruments } from './ops_metrics.js';
import { acquireProfiler, profileReply, type ProfileKind } from './profiler.js';

/** What the node tells the ops endpoint; each method is called once per request. */
export interface OpsProvider {
  /** False once the process is shutting down. */
  live(): boolean;
  /** Whether this replica should receive traffic, and why (or why not). */
  ready(): { ready: boolean; reason: string };
  /** The /status document (node_id, status, view, commit_number, op_number, is_leader, …). */
  status(): Record<string, unknown>;
  /** The Prometheus exposition and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** The compat exposition (the spec's names that promtool rejects), if the node serves one. */
  compatMetrics?(): Promise<{ contentType: string; body: string }>;
}

export interface OpsServerOptions {
  host: string;
  /** 0 picks a free port; the bound one is in the result's `address`. */
  port: number;
  provider: OpsProvider;
  logger: Logger;
  /** Connection cap and timeouts; opsConnectionDefaults when omitted. */
  limits?: OpsConnectionLimits;
  /** Who may use /debug/*; "loopback" when omitted. */
  debugEndpoints?: DebugEndpoints;
  /** Where the port's own metrics go (the node's registry); a private registry when omitted. */
  instruments?: OpsInstruments;
}

export interface OpsServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Fixed bounds; the configurable ones (connections, timeouts) are OpsConnectionLimits. */
export const opsServerLimits = {
  headerSizeBytesMax: 8 * 1024,
  /** A request body up to this size is drained and ignored; a larger one closes the connection. */
  ignoredBodyBytesMax: 64 * 1024,
  /** close() waits this long for busy connections before cutting them. */
  closeGraceMs: 1_000,
  /** At most one forbidden or cancelled log line per this interval (with a suppressed count). */
  warnIntervalMs: 10_000,
} as const;

/** Stable codes in the JSON errors this endpoint answers with. */
export const opsErrorCodes = {
  not_found: errorCodes.not_found,
  method_not_allowed: errorCodes.method_not_allowed,
  forbidden: errorCodes.forbidden,
  internal: errorCodes.internal,
} as const;

interface Reply {
  statusCode: number;
  contentType: string;
  body: string | Uint8Array;
  headers?: Record<string, string>;
  /** The stable code of an error answer; counted in kmb_errors_total when sent. */
  errorCode?: ErrorCode;
}

const jsonType = 'application/json; charset=utf-8';

function json(statusCode: number, value: unknown): Reply {
  return { statusCode, contentType: jsonType, body: JSON.stringify(value) };
}

function errorReply(statusCode: number, code: ErrorCode, message: string): Reply {
  return { ...json(statusCode, { error: { code, message } }), errorCode: code };
}

interface RouteContext {
  readonly provider: OpsProvider;
  readonly query: URLSearchParams;
  /** Aborts when the client closes the connection before the answer is sent. */
  readonly signal: AbortSignal;
}

type Route = (context: RouteContext) => Reply | Promise<Reply>;

const routes: ReadonlyMap<string, Route> = new Map<string, Route>([
  [
    '/health',
    ({ provider }) => {
      const { ready, reason } = provider.ready();
      const live = provider.live();
      return json(live ? 200 : 503, { status: live ? 'ok' : 'shutting_down', ready, reason });
    },
  ],
  [
    '/health/live',
    ({ provider }) =>
      provider.live() ? json(200, { status: 'live' }) : json(503, { status: 'shutting_down' }),
  ],
  [
    '/health/ready',
    ({ provider }) => {
      const { ready, reason } = provider.ready();
      return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', reason });
    },
  ],
  ['/status', ({ provider }) => json(200, provider.status())],
  [
    '/metrics',
    async ({ provider }) => {
      const { contentType, body } = await provider.metrics();
      return { statusCode: 200, contentType, body };
    },
  ],
  [
    '/metrics/compat',
    async ({ provider }) => {
      if (provider.compatMetrics === undefined) {
        return errorReply(404, opsErrorCodes.not_found, 'this node serves no compat metrics');
      }
      const { contentType, body } = await provider.compatMetrics();
      return { statusCode: 200, contentType, body };
    },
  ],
  ['/debug/pprof/profile', ({ query, signal }) => profileReply('cpu', query, signal)],
  ['/debug/pprof/heap', ({ query, signal }) => profileReply('heap', query, signal)],
  ['/debug/logs', ({ query }) => recentLogReply(query)],
]);

/** The profile kind of a path, for counting cancelled profiles. */
const profileKinds: ReadonlyMap<string, ProfileKind> = new Map<string, ProfileKind>([
  ['/debug/pprof/profile', 'cpu'],
  ['/debug/pprof/heap', 'heap'],
]);

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return query < 0 ? raw : raw.slice(0, query);
}

function queryOf(url: string | undefined): string {
  const query = (url ?? '').indexOf('?');
  return query < 0 ? '' : (url ?? '').slice(query + 1);
}

function send(response: ServerResponse, reply: Reply, extraHeaders: Record<string, string> = {}) {
  response.writeHead(reply.statusCode, {
    'content-type': reply.contentType,
    'content-length': String(Buffer.byteLength(reply.body)),
    'cache-control': 'no-store',
    ...reply.headers,
    ...extraHeaders,
  });
  // For HEAD, node:http drops the body and keeps the headers.
  response.end(reply.body);
}

/** Ignores the request body: drains a small one, refuses to read a large or chunked one. */
function ignoreBody(request: IncomingMessage, response: ServerResponse): void {
  const declared = Number(request.headers['content-length'] ?? '0');
  const chunked = request.headers['transfer-encoding'] !== undefined;
  if (chunked || !(declared <= opsServerLimits.ignoredBodyBytesMax)) {
    response.setHeader('connection', 'close');
    return;
  }
  request.resume();
}

/** What one server shares with its requests. */
interface ServerContext {
  readonly options: OpsServerOptions;
  readonly debugEndpoints: DebugEndpoints;
  readonly instruments: OpsInstruments;
}

/** Sends `reply`, counting an error answer's code in kmb_errors_total. */
function answer(
  server: ServerContext,
  response: ServerResponse,
  reply: Reply,
  extraHeaders: Record<string, string> = {},
): void {
  if (reply.errorCode !== undefined) server.instruments.errorsTotal(reply.errorCode).inc();
  send(response, reply, extraHeaders);
}

function handle(request: IncomingMessage, response: ServerResponse, server: ServerContext) {
  ignoreBody(request, response);
  const method = request.method ?? '';
  const path = pathOf(request.url);
  if (method !== 'GET' && method !== 'HEAD') {
    const message = `${method} is not allowed; the ops endpoint only answers GET`;
    answer(server, response, errorReply(405, opsErrorCodes.method_not_allowed, message), {
      allow: 'GET, HEAD',
    });
    return;
  }
  const route = routes.get(path);
  if (route === undefined) {
    const known = [...routes.keys()].join(', ');
    const message = `no such path ${path}; try one of ${known}`;
    answer(server, response, errorReply(404, opsErrorCodes.not_found, message));
    return;
  }
  if (path.startsWith(debugPathPrefix) && !debugAllowed(request, response, server, path)) return;
  serve(route, { request, response, method, path }, server);
}

/** Answers 403 (counted, logged rate-limited) when this client may not use /debug/*. */
function debugAllowed(
  request: IncomingMessage,
  response: ServerResponse,
  server: ServerContext,
  path: string,
): boolean {
  const remote = request.socket.remoteAddress;
  const message = debugRefusal(server.debugEndpoints, remote);
  if (message === undefined) return true;
  server.options.logger.warnRateLimited(
    'ops_debug_forbidden',
    opsServerLimits.warnIntervalMs,
    'Ops debug request forbidden',
    { remote, path, debug_endpoints: server.debugEndpoints },
  );
  answer(server, response, errorReply(403, opsErrorCodes.forbidden, message));
  return false;
}

interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly method: string;
  readonly path: string;
}

/** Runs the route; its signal aborts if the client goes first, and then nothing is sent. */
function serve(route: Route, exchange: Exchange, server: ServerContext): void {
  const { request, response, method, path } = exchange;
  const client = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) client.abort();
  });
  const context: RouteContext = {
    provider: server.options.provider,
    query: new URLSearchParams(queryOf(request.url)),
    signal: client.signal,
  };
  const failed = (error: unknown): void => {
    if (client.signal.aborted) cancelled(server, path);
    else fail(server, response, { method, path, error });
  };
  Promise.resolve()
    .then(() => route(context))
    .then((reply) => {
      if (client.signal.aborted) cancelled(server, path);
      else answer(server, response, reply);
    }, failed)
    .catch(failed);
}

/** A request whose client left before its answer: counted (profiles) and logged. */
function cancelled(server: ServerContext, path: string): void {
  const kind = profileKinds.get(path);
  if (kind !== undefined) server.instruments.profilesCancelledTotal[kind].inc();
  server.options.logger.rateLimited(
    'info',
    'ops_request_cancelled',
    opsServerLimits.warnIntervalMs,
    'Ops request cancelled: the client closed the connection',
    { path },
  );
}

function fail(
  server: ServerContext,
  response: ServerResponse,
  fields: Record<string, unknown>,
): void {
  server.options.logger.error('ops request failed', fields);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const message = `internal error while serving ${String(fields['path'])}; see the server log`;
  answer(server, response, errorReply(500, opsErrorCodes.internal, message));
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      const why = `cannot listen for ops HTTP on ${host}:${port}: ${error.message}`;
      reject(kmbError('config_invalid', why, error));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closer(server: Server, release: () => void): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => {
    closing ??= new Promise<void>((resolve) => {
      release();
      const timer = setTimeout(() => server.closeAllConnections(), opsServerLimits.closeGraceMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
}

/** Creates the node:http server with the gate in front of every connection and request. */
function createOpsHttpServer(context: ServerContext, limits: OpsConnectionLimits): Server {
  const logger = context.options.logger;
  const gate = new ConnectionGate(limits, context.instruments, logger);
  const server = createServer(
    { maxHeaderSize: opsServerLimits.headerSizeBytesMax, ...timeoutServerOptions(limits) },
    (req, res) => {
      // A request on a connection the gate refused or shed is not served.
      if (!gate.track(req.socket, res)) {
        res.destroy();
        return;
      }
      try {
        handle(req, res, context);
      } catch (error) {
        fail(context, res, { method: req.method, path: pathOf(req.url), error });
      }
    },
  );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.on('connection', (socket: Socket) => gate.admit(socket));
  return server;
}

/** Starts the ops endpoint; resolves once it is listening. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { host, port, logger } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw kmbError('config_invalid', `ops HTTP port ${port} is not in 0..65535`);
  }
  const limits = options.limits ?? opsConnectionDefaults;
  const problem = opsLimitsProblem(limits);
  if (problem !== undefined) throw kmbError('config_invalid', `ops HTTP limits: ${problem}`);
  const context: ServerContext = {
    options,
    debugEndpoints: options.debugEndpoints ?? 'loopback',
    instruments: options.instruments ?? createOpsInstruments(new Registry()),
  };
  const server = createOpsHttpServer(context, limits);
  const bound = await listen(server, host, port);
  server.on('error', (error) => logger.error('ops server error', { error }));
  logger.info('ops endpoint listening', {
    host: bound.address,
    port: bound.port,
    debug_endpoints: context.debugEndpoints,
    connection_count_max: limits.connectionCountMax,
  });
  const close = closer(server, acquireProfiler());
  return { address: { host: bound.address, port: bound.port }, close };
}

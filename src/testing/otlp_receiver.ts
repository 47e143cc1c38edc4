// A small OTLP/HTTP receiver for tests and benchmarks: it listens on loopback, accepts the JSON
// encoding of OTLP export requests on POST /v1/metrics and POST /v1/traces (gzip or not), keeps
// what it received, and flattens it into plain records (one per metric data point, one per span)
// so that a test can assert on names, attributes, values and parent/child links.
//
// Invariants: at most `requestCountMax` requests are kept per signal (older ones are dropped and
// counted), each body is at most `bodyBytesMax` bytes (larger ones are answered 413 and not
// kept). Protobuf bodies are answered 415: our exporters are configured for JSON. The answer
// status can be switched (`failWith`) to exercise an exporter against a failing collector.

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { waitUntil } from './wait_until.js';

/** One attribute value as OTLP JSON carries it, decoded to a plain value. */
export type AttributeValue = string | number | boolean | null;
export type Attributes = Readonly<Record<string, AttributeValue>>;

export type MetricKind = 'sum' | 'gauge' | 'histogram' | 'summary' | 'exponential_histogram';

/** One data point of one metric, with its metric's name, kind and its resource's attributes. */
export interface MetricPoint {
  readonly name: string;
  readonly unit: string;
  readonly kind: MetricKind;
  /** For sums: true when monotonic. */
  readonly monotonic: boolean;
  /** 1 delta, 2 cumulative, 0 unspecified (gauges). */
  readonly temporality: number;
  readonly attributes: Attributes;
  readonly resource: Attributes;
  /** Sums and gauges: the value; histograms: the sum of observations. */
  readonly value: number;
  /** Histograms: the number of observations. */
  readonly count: number;
  /** Histograms: the explicit upper bounds. */
  readonly bounds: readonly number[];
  /** Histograms: observations per bucket (not cumulative), bounds.length + 1 of them. */
  readonly bucketCounts: readonly number[];
  readonly timeUnixNano: string;
}

/** One span, flattened with its resource's and scope's names. */
export interface ReceivedSpan {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  /** The parent span id, or '' for a root span. */
  readonly parentSpanId: string;
  readonly kind: number;
  readonly attributes: Attributes;
  readonly resource: Attributes;
  readonly scope: string;
  readonly links: readonly { traceId: string; spanId: string }[];
  readonly statusCode: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
}

export interface OtlpReceiverOptions {
  readonly requestCountMax?: number;
  readonly bodyBytesMax?: number;
}

type Json = Record<string, unknown>;
type Signal = 'metrics' | 'traces';

const requestCountMaxDefault = 10_000;
const bodyBytesMaxDefault = 16 * 1024 * 1024;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

/** OTLP JSON encodes 64-bit integers as strings or numbers; both become numbers here. */
function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value !== '') return Number(value);
  return 0;
}

function anyValue(value: unknown): AttributeValue {
  if (!isRecord(value)) return null;
  if ('stringValue' in value) return text(value['stringValue']);
  if ('boolValue' in value) return value['boolValue'] === true;
  if ('intValue' in value) return num(value['intValue']);
  if ('doubleValue' in value) return num(value['doubleValue']);
  return null;
}

/** Decodes an OTLP KeyValue list into a plain record. */
export function decodeAttributes(value: unknown): Attributes {
  const out: Record<string, AttributeValue> = {};
  for (const entry of list(value)) out[text(entry['key'])] = anyValue(entry['value']);
  return out;
}

/** Trace and span ids arrive as hex in OTLP JSON (or base64 from some encoders). */
function id(value: unknown): string {
  const raw = text(value);
  if (/^[0-9a-fA-F]*$/.test(raw)) return raw.toLowerCase();
  return Buffer.from(raw, 'base64').toString('hex');
}

const metricKinds: readonly MetricKind[] = [
  'sum',
  'gauge',
  'histogram',
  'summary',
  'exponential_histogram',
];
const jsonKindKeys: Record<MetricKind, string> = {
  sum: 'sum',
  gauge: 'gauge',
  histogram: 'histogram',
  summary: 'summary',
  exponential_histogram: 'exponentialHistogram',
};

function metricPoints(metric: Json, resource: Attributes): MetricPoint[] {
  const kind = metricKinds.find((k) => isRecord(metric[jsonKindKeys[k]]));
  if (kind === undefined) return [];
  const body = metric[jsonKindKeys[kind]] as Json;
  return list(body['dataPoints']).map((point) => {
    const histogram = kind === 'histogram';
    return {
      name: text(metric['name']),
      unit: text(metric['unit']),
      kind,
      monotonic: body['isMonotonic'] === true,
      temporality: num(body['aggregationTemporality']),
      attributes: decodeAttributes(point['attributes']),
      resource,
      value: histogram
        ? num(point['sum'])
        : num(point['asDouble'] ?? point['asInt'] ?? point['sum']),
      count: num(point['count']),
      bounds: Array.isArray(point['explicitBounds']) ? point['explicitBounds'].map(num) : [],
      bucketCounts: Array.isArray(point['bucketCounts']) ? point['bucketCounts'].map(num) : [],
      timeUnixNano: text(point['timeUnixNano']),
    };
  });
}

/** Flattens one OTLP JSON metrics export request into data points. */
export function flattenMetrics(body: unknown): MetricPoint[] {
  const points: MetricPoint[] = [];
  if (!isRecord(body)) return points;
  for (const resourceMetrics of list(body['resourceMetrics'])) {
    const resource = isRecord(resourceMetrics['resource'])
      ? decodeAttributes(resourceMetrics['resource']['attributes'])
      : {};
    for (const scope of list(resourceMetrics['scopeMetrics'])) {
      for (const metric of list(scope['metrics'])) points.push(...metricPoints(metric, resource));
    }
  }
  return points;
}

function span(raw: Json, resource: Attributes, scope: string): ReceivedSpan {
  const status = isRecord(raw['status']) ? num(raw['status']['code']) : 0;
  return {
    name: text(raw['name']),
    traceId: id(raw['traceId']),
    spanId: id(raw['spanId']),
    parentSpanId: id(raw['parentSpanId']),
    kind: num(raw['kind']),
    attributes: decodeAttributes(raw['attributes']),
    resource,
    scope,
    links: list(raw['links']).map((link) => ({
      traceId: id(link['traceId']),
      spanId: id(link['spanId']),
    })),
    statusCode: status,
    startTimeUnixNano: text(raw['startTimeUnixNano']),
    endTimeUnixNano: text(raw['endTimeUnixNano']),
  };
}

/** Flattens one OTLP JSON traces export request into spans. */
export function flattenSpans(body: unknown): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  if (!isRecord(body)) return spans;
  for (const resourceSpans of list(body['resourceSpans'])) {
    const resource = isRecord(resourceSpans['resource'])
      ? decodeAttributes(resourceSpans['resource']['attributes'])
      : {};
    for (const scopeSpans of list(resourceSpans['scopeSpans'])) {
      const scope = isRecord(scopeSpans['scope']) ? text(scopeSpans['scope']['name']) : '';
      for (const raw of list(scopeSpans['spans'])) spans.push(span(raw, resource, scope));
    }
  }
  return spans;
}

/** A loopback OTLP/HTTP (JSON) collector stand-in. */
export class OtlpReceiver {
  /** Requests that were dropped from memory because more than requestCountMax arrived. */
  droppedRequestCount = 0;
  /** Requests answered with an error status (bad body, protobuf, failWith). */
  rejectedRequestCount = 0;
  private readonly bodies: Record<Signal, unknown[]> = { metrics: [], traces: [] };
  private readonly waiters = new Set<() => void>();
  private failStatus: number | null = null;
  private readonly requestCountMax: number;
  private readonly bodyBytesMax: number;

  private constructor(
    private readonly server: Server,
    options: OtlpReceiverOptions,
  ) {
    this.requestCountMax = options.requestCountMax ?? requestCountMaxDefault;
    this.bodyBytesMax = options.bodyBytesMax ?? bodyBytesMaxDefault;
  }

  /** Starts listening on 127.0.0.1 on a free port. */
  static async start(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server, options);
    server.on('request', (request, response) => receiver.onRequest(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return receiver;
  }

  /** The base URL, e.g. http://127.0.0.1:PORT (exporters append /v1/metrics, /v1/traces). */
  get url(): string {
    const address = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  /** Requests received so far for one signal. */
  requestCount(signal: Signal): number {
    return this.bodies[signal].length;
  }

  /** Every metric data point received so far, oldest request first. */
  metricPoints(): MetricPoint[] {
    return this.bodies.metrics.flatMap(flattenMetrics);
  }

  /** The data points of the most recent request that carried metric `name`. */
  latestPoints(name: string): MetricPoint[] {
    for (let index = this.bodies.metrics.length - 1; index >= 0; index -= 1) {
      const points = flattenMetrics(this.bodies.metrics[index]).filter((p) => p.name === name);
      if (points.length > 0) return points;
    }
    return [];
  }

  /** Every span received so far. */
  spans(): ReceivedSpan[] {
    return this.bodies.traces.flatMap(flattenSpans);
  }

  /** From now on answer every request with `status` (e.g. 503), or normally again with null. */
  failWith(status: number | null): void {
    this.failStatus = status;
  }

  /** Resolves once `check()` is true, re-checked after each request; rejects after timeoutMs. */
  async waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return waitUntil(this.waiters, check, timeoutMs, `OTLP receiver: ${what}`);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    let sizeBytes = 0;
    request.on('data', (chunk: Buffer) => {
      sizeBytes += chunk.length;
      if (sizeBytes <= this.bodyBytesMax) chunks.push(chunk);
    });
    request.on('end', () => {
      const status = this.accept(request, Buffer.concat(chunks), sizeBytes);
      if (status !== 200) this.rejectedRequestCount += 1;
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(status === 200 ? '{}' : '{"error":"rejected by the test receiver"}');
      for (const wake of [...this.waiters]) wake();
    });
  }

  private accept(request: IncomingMessage, raw: Buffer, sizeBytes: number): number {
    if (this.failStatus !== null) return this.failStatus;
    const signal = signalOf(request.method, request.url);
    if (signal === null) return 404;
    if (sizeBytes > this.bodyBytesMax) return 413;
    if (!String(request.headers['content-type'] ?? '').includes('json')) return 415;
    let body: unknown;
    try {
      const data = request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      body = JSON.parse(data.toString('utf8'));
    } catch {
      return 400;
    }
    const bodies = this.bodies[signal];
    bodies.push(body);
    if (bodies.length > this.requestCountMax) {
      bodies.shift();
      this.droppedRequestCount += 1;
    }
    return 200;
  }
}

function signalOf(method: string | undefined, url: string | undefined): Signal | null {
  if (method !== 'POST') return null;
  const path = (url ?? '').split('?')[0];
  if (path === '/v1/metrics') return 'metrics';
  if (path === '/v1/traces') return 'traces';
  return null;
}

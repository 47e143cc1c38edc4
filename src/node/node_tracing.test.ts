// Proves, inside one process, the span tree a node makes: an SDK call with a parent span gets
// a kmb.client.* span whose context travels on the wire, and the node's kmb.write is its child
// (same trace id), with kmb.consensus.prepare then kmb.consensus.commit under the kmb.write;
// reads give kmb.query under the client's span; every write that committed is covered by
// exactly one prepare span, as its parent or one of its links (the batch rule); failed writes
// carry their error code. And that with tracing off the node never starts a span: a global
// tracer provider that counts every span started anywhere in the process sees none. Sampling:
// with tracing_sample_ratio 0 a request is traced only when its caller sent a sampled trace
// context; an unsampled context or none makes no server span at all, not even a prepare span.

import { strict as assert } from 'node:assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Tracer, TracerProvider } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { connect } from '../client/client.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Tracing } from '../observability/tracing.js';
import { KimberliteNode } from './node.js';
import type { NodeConfig } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

function config(dataDir: string): NodeConfig {
  return singleNodeConfig(dataDir, { pipelinePrepareCountMax: 2 });
}

async function startNode(tracing: Tracing | undefined, sampleRatio?: number) {
  const dataDir = await mkdtemp(join(tmpdir(), 'kmb-trace-'));
  const sampling =
    sampleRatio === undefined
      ? {}
      : { tracing: { endpoint: 'http://127.0.0.1:9/unused', serviceName: 'k', sampleRatio } };
  const node = await KimberliteNode.start({
    config: { ...config(dataDir), ...sampling },
    logger: silentLogger(),
    metrics: new Metrics({ nodeId: 0 }),
    ...(tracing === undefined ? {} : { tracing }),
  });
  return { node, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
}

function clientTracer(): { tracer: Tracer; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { tracer: provider.getTracer('test-app'), exporter };
}

/** The node's tracing, exporting into `exporter` (optionally on a short batch delay). */
function serverTracing(exporter: InMemorySpanExporter, scheduledDelayMs?: number): Tracing {
  return new Tracing({
    endpoint: 'http://127.0.0.1:9/unused',
    serviceName: 'kimberlite-test',
    nodeId: 0,
    logger: silentLogger(),
    exporter,
    ...(scheduledDelayMs === undefined ? {} : { scheduledDelayMs }),
  });
}

/** Keeps its spans when the node shuts its pipeline down (the stock one forgets them). */
class KeepingExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const parentId = (span: ReadableSpan): string => span.parentSpanContext?.spanId ?? '';
const idOf = (span: ReadableSpan): string => span.spanContext().spanId;

function only(spans: readonly ReadableSpan[], what: string): ReadableSpan {
  assert.equal(spans.length, 1, `exactly one ${what}, got ${spans.length}`);
  const span = spans[0];
  assert.ok(span !== undefined);
  return span;
}

describe('node tracing', () => {
  it('links SDK, kmb.write, kmb.consensus.prepare/commit and kmb.query in one trace', async () => {
    const serverSpans = new KeepingExporter();
    const tracing = serverTracing(serverSpans, 10);
    const { node, cleanup } = await startNode(tracing);
    const app = clientTracer();
    const client = await connect({ addresses: [node.address], tracer: app.tracer });
    const parent = app.tracer.startSpan('checkout');
    const traceContext = trace.setSpan(ROOT_CONTEXT, parent);
    try {
      const tenant = await client.createTenant('acme', { traceContext });
      const stream = await client.createStream({ tenantId: tenant.tenantId, name: 's' });
      await client.append(
        { tenantId: tenant.tenantId, streamId: stream.streamId, events: ['a'] },
        { traceContext },
      );
      await client.read({ tenantId: tenant.tenantId, streamId: stream.streamId }, { traceContext });
      await assert.rejects(client.createTenant('acme', { traceContext }), {
        code: 'KMB_ERR_TENANT_EXISTS',
      });
      parent.end();
    } finally {
      await client.close();
      await node.stop();
      await cleanup();
    }
    const spans = serverSpans.getFinishedSpans();
    const appSpans = app.exporter.getFinishedSpans();
    const traceId = parent.spanContext().traceId;
    const appendClient = only(
      appSpans.filter((s) => s.name === 'kmb.client.append'),
      'kmb.client.append',
    );
    assert.equal(parentId(appendClient), parent.spanContext().spanId);
    const write = only(
      spans.filter((s) => s.name === 'kmb.write' && parentId(s) === idOf(appendClient)),
      'kmb.write under kmb.client.append',
    );
    assert.equal(write.spanContext().traceId, traceId);
    assert.equal(write.attributes['kmb.operation'], 'append');
    assert.equal(write.attributes['node_id'], 0);
    assert.equal(typeof write.attributes['op'], 'number');
    assert.equal(write.attributes['tenant_id'], 1);
    const prepare = only(
      spans.filter((s) => s.name === 'kmb.consensus.prepare' && parentId(s) === idOf(write)),
      'prepare under the write',
    );
    const commit = only(
      spans.filter((s) => s.name === 'kmb.consensus.commit' && parentId(s) === idOf(write)),
      'commit under the write',
    );
    assert.equal(prepare.attributes['op'], write.attributes['op']);
    assert.equal(commit.attributes['op'], write.attributes['op']);
    assert.ok(toNs(commit.startTime) >= toNs(prepare.endTime), 'commit follows prepare');
    assert.ok(toNs(write.endTime) >= toNs(commit.endTime), 'the write ends after its commit');

    const readClient = only(
      appSpans.filter((s) => s.name === 'kmb.client.read_stream'),
      'kmb.client.read_stream',
    );
    const query = only(
      spans.filter((s) => s.name === 'kmb.query' && parentId(s) === idOf(readClient)),
      'kmb.query under the read',
    );
    assert.equal(query.spanContext().traceId, traceId);
    assert.equal(query.attributes['stream_id'], 1);

    const failed = appSpans.filter((s) => s.name === 'kmb.client.create_tenant');
    assert.equal(failed.length, 2);
    const failedWrite = spans.find(
      (s) => s.name === 'kmb.write' && s.attributes['error.code'] === 'KMB_ERR_TENANT_EXISTS',
    );
    assert.ok(failedWrite !== undefined, 'a committed kernel error marks its kmb.write');
    assert.ok(failed.some((s) => parentId(failedWrite) === idOf(s)));
    // The untraced createStream still made server spans, as roots of their own traces.
    assert.ok(spans.some((s) => s.name === 'kmb.write' && s.spanContext().traceId !== traceId));
  });

  it('covers every committed write of a batch with one prepare span', async () => {
    const serverSpans = new KeepingExporter();
    const tracing = serverTracing(serverSpans);
    const { node, cleanup } = await startNode(tracing);
    const clients = await Promise.all(
      Array.from({ length: 8 }, () => connect({ addresses: [node.address] })),
    );
    try {
      const first = clients[0];
      assert.ok(first !== undefined);
      const tenant = await first.createTenant('t');
      const stream = await first.createStream({ tenantId: tenant.tenantId, name: 's' });
      const input = { tenantId: tenant.tenantId, streamId: stream.streamId, events: ['e'] };
      await Promise.all(
        clients.map(async (c) => {
          for (let i = 0; i < 10; i++) await c.append(input);
        }),
      );
    } finally {
      for (const c of clients) await c.close();
      await node.stop();
      await cleanup();
    }
    const spans = serverSpans.getFinishedSpans();
    const prepares = spans.filter((s) => s.name === 'kmb.consensus.prepare');
    const writes = spans.filter((s) => s.name === 'kmb.write' && s.attributes['op'] !== undefined);
    assert.ok(writes.length >= 8 * 11 + 2, `every write was traced (${writes.length})`);
    for (const write of writes) {
      const covering = prepares.filter(
        (p) => parentId(p) === idOf(write) || p.links.some((l) => l.context.spanId === idOf(write)),
      );
      assert.equal(covering.length, 1, `write of op ${String(write.attributes['op'])}`);
      assert.equal(covering[0]?.attributes['op'], write.attributes['op']);
    }
  });

  it('starts no span anywhere when tracing is off', async () => {
    let started = 0;
    const counting = clientTracer();
    const spy: TracerProvider = {
      getTracer: () => ({
        startSpan: (...args: Parameters<Tracer['startSpan']>) => {
          started += 1;
          return counting.tracer.startSpan(...args);
        },
        startActiveSpan: () => {
          throw new Error('startActiveSpan is not used');
        },
      }),
    };
    trace.setGlobalTracerProvider(spy);
    const { node, cleanup } = await startNode(undefined);
    const client = await connect({ addresses: [node.address] });
    try {
      const tenant = await client.createTenant('quiet');
      const stream = await client.createStream({ tenantId: tenant.tenantId, name: 's' });
      await client.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events: ['x'] });
      await client.read({ tenantId: tenant.tenantId, streamId: stream.streamId });
    } finally {
      await client.close();
      await node.stop();
      await cleanup();
      trace.disable();
    }
    assert.equal(started, 0, 'no span was started by the node or the SDK');
  });
  it('traces only sampled callers when the sample ratio is 0', async () => {
    const serverSpans = new KeepingExporter();
    const tracing = serverTracing(serverSpans);
    const { node, cleanup } = await startNode(tracing, 0);
    const client = await connect({ addresses: [node.address] });
    const traceId = 'ab'.repeat(16);
    const context = (traceFlags: number) =>
      trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: 'cd'.repeat(8), traceFlags });
    try {
      const tenant = await client.createTenant('t');
      const stream = await client.createStream({ tenantId: tenant.tenantId, name: 's' });
      const input = { tenantId: tenant.tenantId, streamId: stream.streamId, events: ['e'] };
      for (let i = 0; i < 5; i++) await client.append(input);
      for (let i = 0; i < 3; i++) await client.append(input, { traceContext: context(0) });
      await client.append(input, { traceContext: context(1) });
      await client.read({ tenantId: tenant.tenantId, streamId: stream.streamId });
    } finally {
      await client.close();
      await node.stop();
      await cleanup();
    }
    const spans = serverSpans.getFinishedSpans();
    const names = spans.map((span) => span.name).sort();
    assert.deepEqual(names, ['kmb.consensus.commit', 'kmb.consensus.prepare', 'kmb.write']);
    for (const span of spans) assert.equal(span.spanContext().traceId, traceId);
  });
});

function toNs(time: readonly [number, number]): number {
  return time[0] * 1e9 + time[1];
}

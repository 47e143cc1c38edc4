// Distributed tracing and key log events with real processes: a 3-replica cluster exports spans
// over OTLP/HTTP to a loopback receiver ([telemetry] tracing_enabled/tracing_endpoint set through
// KMB_TELEMETRY_* variables), and an SDK client with its own tracer calls it inside a parent
// span. The leader's death then forces a view change, and its restart a repair.
//
// The harness also checks that every line each replica writes is a spec-shaped JSON log line.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { OtlpReceiver } from '../src/testing/otlp_receiver.js';
import type { ReceivedSpan } from '../src/testing/otlp_receiver.js';
import { Harness } from './harness.js';
import type { LogLine } from './harness.js';
import { TestCluster, hangTimeoutMs } from './cluster_harness.js';

const spanWaitMs = 20_000;

function named(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((span) => span.name === name);
}

function onlyOne<T>(items: readonly T[], what: string): T {
  assert.equal(items.length, 1, `exactly one ${what}, got ${items.length}`);
  const item = items[0];
  assert.ok(item !== undefined);
  return item;
}

test(
  'spans reach an OTLP/HTTP receiver with SDK → leader parent links; key events are logged',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves: (1) the leader's kmb.write is a child of the SDK's client span, itself a child of
    // the application's span, all in one trace id, with kmb.consensus.prepare and
    // kmb.consensus.commit under the kmb.write and kmb.query under the client's read span, and
    // attributes node_id (= the leader, also service.instance.id), view, op, tenant/stream ids;
    // (2) a leader's SIGKILL gives a kmb.view_change span and the new leader logs "Became
    // leader" exactly once for its view, after "View change started" (with its reason) and
    // "View change finished"; (3) the restarted replica's catch-up gives kmb.repair spans.
    const receiver = await OtlpReceiver.start();
    t.after(() => receiver.close());
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, {
      name: 'traced',
      env: {
        KMB_TELEMETRY_TRACING_ENABLED: 'true',
        KMB_TELEMETRY_TRACING_ENDPOINT: receiver.url,
      },
    });
    const first = await cluster.waitForLeader();
    const appSpans = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(appSpans)],
    });
    const tracer = provider.getTracer('tracing-test');
    const client = await cluster.connect({ tracer });
    const parent = tracer.startSpan('order');
    const traceContext = trace.setSpan(ROOT_CONTEXT, parent);
    const tenant = await client.createTenant('traced', { traceContext });
    const stream = await client.createStream({ tenantId: tenant.tenantId, name: 'orders' });
    const where = { tenantId: tenant.tenantId, streamId: stream.streamId };
    await client.append({ ...where, events: ['one', 'two'] }, { traceContext });
    await client.read(where, { traceContext });
    parent.end();
    const traceId = parent.spanContext().traceId;
    const appendSpan = onlyOne(
      appSpans.getFinishedSpans().filter((s) => s.name === 'kmb.client.append'),
      'kmb.client.append',
    );
    const readSpan = onlyOne(
      appSpans.getFinishedSpans().filter((s) => s.name === 'kmb.client.read_stream'),
      'kmb.client.read_stream',
    );
    const appendId = appendSpan.spanContext().spanId;
    const readId = readSpan.spanContext().spanId;
    await receiver.waitFor(
      () => {
        const spans = receiver.spans();
        const write = spans.find((s) => s.name === 'kmb.write' && s.parentSpanId === appendId);
        return (
          write !== undefined &&
          spans.some((s) => s.name === 'kmb.consensus.commit' && s.parentSpanId === write.spanId) &&
          spans.some((s) => s.name === 'kmb.query' && s.parentSpanId === readId)
        );
      },
      spanWaitMs,
      'the traced append and read',
    );
    const spans = receiver.spans();
    const write = onlyOne(
      spans.filter((s) => s.name === 'kmb.write' && s.parentSpanId === appendId),
      'kmb.write under the SDK span',
    );
    assert.equal(appendSpan.parentSpanContext?.spanId, parent.spanContext().spanId);
    assert.equal(appendSpan.spanContext().traceId, traceId);
    assert.equal(write.traceId, traceId);
    assert.equal(write.attributes['node_id'], first.leader);
    assert.equal(write.resource['service.instance.id'], String(first.leader));
    assert.equal(write.resource['service.name'], 'kimberlite');
    assert.equal(write.attributes['view'], first.view);
    assert.equal(write.attributes['tenant_id'], tenant.tenantId);
    assert.equal(write.attributes['stream_id'], stream.streamId);
    assert.equal(write.attributes['kmb.operation'], 'append');
    assert.equal(write.kind, 2, 'kmb.write is a server span');
    const op = write.attributes['op'];
    assert.equal(typeof op, 'number');
    for (const name of ['kmb.consensus.prepare', 'kmb.consensus.commit']) {
      const child = onlyOne(
        named(spans, name).filter((s) => s.parentSpanId === write.spanId),
        `${name} under the kmb.write`,
      );
      assert.equal(child.traceId, traceId);
      assert.equal(child.attributes['op'], op);
      assert.equal(child.attributes['node_id'], first.leader);
    }
    const query = onlyOne(
      spans.filter((s) => s.name === 'kmb.query' && s.parentSpanId === readId),
      'kmb.query under the read span',
    );
    assert.equal(query.traceId, traceId);
    assert.equal(query.attributes['stream_id'], stream.streamId);

    // A view change: the leader dies, a backup takes over; then the old leader comes back.
    await cluster.kill(first.leader);
    const second = await cluster.waitForLeader({
      excluding: [first.leader],
      viewAbove: first.view,
    });
    for (let i = 0; i < 20; i++) await client.append({ ...where, events: [`after ${i}`] });
    await receiver.waitFor(
      () =>
        receiver
          .spans()
          .some(
            (s) =>
              s.name === 'kmb.view_change' &&
              s.attributes['node_id'] === second.leader &&
              s.attributes['leader'] === second.leader,
          ),
      spanWaitMs,
      'the new leader kmb.view_change span',
    );
    const change = receiver
      .spans()
      .find((s) => s.name === 'kmb.view_change' && s.attributes['node_id'] === second.leader);
    assert.ok(change !== undefined);
    assert.ok(Number(change.attributes['view']) > first.view);
    assert.equal(typeof change.attributes['reason'], 'string');
    assert.ok(Number(change.attributes['attempts']) >= 1);
    checkLeaderLog(cluster.node(second.leader).lines, second.leader, second.view);

    await cluster.restart(first.leader);
    await cluster.waitForConvergence();
    await receiver.waitFor(
      () =>
        receiver
          .spans()
          .some((s) => s.name === 'kmb.repair' && s.attributes['node_id'] === first.leader),
      spanWaitMs,
      'a kmb.repair span from the restarted replica',
    );
    const repair = receiver
      .spans()
      .find((s) => s.name === 'kmb.repair' && s.attributes['node_id'] === first.leader);
    assert.ok(repair !== undefined);
    assert.ok(Number(repair.attributes['op_last']) >= Number(repair.attributes['op_first']));
    assert.equal(receiver.rejectedRequestCount, 0);
    await client.close();
  },
);

/** The new leader's log: the view change and its election, each once, with their fields. */
function checkLeaderLog(lines: readonly LogLine[], leader: number, view: number): void {
  const became = lines.filter((l) => l.message === 'Became leader' && l.fields['view'] === view);
  const line = onlyOne(became, `"Became leader" for view ${view}`);
  assert.equal(line.target, 'kmb_consensus');
  assert.equal(line.level, 'INFO');
  assert.equal(line.fields['node_id'], leader);
  assert.equal(typeof line.fields['op'], 'number');
  assert.equal(typeof line.fields['commit_index'], 'number');
  const started = lines.find((l) => l.message === 'View change started');
  assert.ok(started !== undefined, 'View change started is logged');
  assert.equal(typeof started.fields['reason'], 'string');
  assert.equal(started.fields['node_id'], leader);
  const finished = lines.filter(
    (l) => l.message === 'View change finished' && l.fields['view'] === view,
  );
  assert.equal(onlyOne(finished, 'View change finished').fields['leader'], leader);
}

// Proves the export pipeline against a real OTLP/HTTP receiver on loopback: spans arrive with
// the node's resource (service.name, service.instance.id), node_id, a remote parent's trace and
// span ids, and links; an endpoint without a path gets /v1/traces; and a collector answering
// errors costs one rate-limited "Trace export failed" warning and never an exception.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { createLogger } from './logger.js';
import { OtlpReceiver } from '../testing/otlp_receiver.js';
import { Tracing, spanContextOf, traceParentOf, tracesUrl } from './tracing.js';

function capturingLogger(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const logger = createLogger({ env: {}, destination: { write: (l: string) => lines.push(l) } });
  return { lines, logger };
}

const remote = { traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), flags: 1 };

describe('tracing export', () => {
  it('adds /v1/traces only to an endpoint without a path', () => {
    assert.equal(tracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://collector:4318/'), 'http://collector:4318/v1/traces');
    assert.equal(tracesUrl('http://jaeger:4318/v1/traces'), 'http://jaeger:4318/v1/traces');
  });

  it('sends spans over OTLP/HTTP with resource, node_id, remote parent and links', async (t) => {
    const receiver = await OtlpReceiver.start();
    t.after(() => receiver.close());
    const { logger } = capturingLogger();
    const tracing = new Tracing({
      endpoint: receiver.url,
      serviceName: 'kmb-test',
      nodeId: 2,
      logger,
      scheduledDelayMs: 10,
    });
    const write = tracing.startSpan('kmb.write', {
      parent: spanContextOf(remote),
      attributes: { op: 7 },
    });
    const sibling = tracing.startSpan('kmb.write');
    const prepare = tracing.startSpan('kmb.consensus.prepare', {
      parent: write,
      links: [{ context: sibling.spanContext() }],
    });
    prepare.end();
    sibling.end();
    write.end();
    assert.deepEqual(traceParentOf(write).traceId, remote.traceId);
    await tracing.shutdown();
    const spans = receiver.spans();
    const got = spans.find((s) => s.name === 'kmb.write' && s.parentSpanId === remote.spanId);
    assert.ok(got !== undefined, JSON.stringify(spans.map((s) => s.name)));
    assert.equal(got.traceId, remote.traceId);
    assert.equal(got.attributes['node_id'], 2);
    assert.equal(got.attributes['op'], 7);
    assert.equal(got.resource['service.name'], 'kmb-test');
    assert.equal(got.resource['service.instance.id'], '2');
    const child = spans.find((s) => s.name === 'kmb.consensus.prepare');
    assert.equal(child?.parentSpanId, got.spanId);
    assert.deepEqual(child?.links, [
      { traceId: sibling.spanContext().traceId, spanId: sibling.spanContext().spanId },
    ]);
  });

  it('logs failed exports as one rate-limited warning and keeps going', async (t) => {
    const receiver = await OtlpReceiver.start();
    t.after(() => receiver.close());
    receiver.failWith(400);
    const { lines, logger } = capturingLogger();
    const tracing = new Tracing({ endpoint: receiver.url, serviceName: 's', nodeId: 0, logger });
    for (let i = 0; i < 3; i++) {
      tracing.startSpan('kmb.query').end();
      await tracing.forceFlush();
    }
    await tracing.shutdown();
    const warnings = lines.filter((l) => l.includes('"Trace export failed"'));
    assert.equal(warnings.length, 1, lines.join(''));
    assert.ok(receiver.rejectedRequestCount >= 3);
  });
});

// The telemetry overhead benchmark's collector stand-in, run as its own process so that
// receiving and parsing spans and metrics never takes CPU from the benchmark's load generator:
// it starts a loopback OTLP/HTTP receiver and a StatsD UDP socket, prints their addresses as one
// JSON line, and on SIGTERM prints what it received as one JSON line and exits.

import { OtlpReceiver } from '../src/testing/otlp_receiver.js';
import { StatsdReceiver } from '../src/testing/statsd_receiver.js';

const otlp = await OtlpReceiver.start({ requestCountMax: 1000 });
const statsd = await StatsdReceiver.start();
console.log(JSON.stringify({ otlp: otlp.url, statsd: statsd.address }));
process.once('SIGTERM', () => {
  const received = {
    otlpMetricRequests: otlp.requestCount('metrics'),
    spans: otlp.spans().length,
    statsdLines: statsd.lines.length,
  };
  console.log(JSON.stringify(received));
  void Promise.all([otlp.close(), statsd.close()]).then(() => process.exit(0));
});

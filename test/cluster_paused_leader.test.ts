// A leader paused with SIGSTOP, with real processes: a 3-replica cluster, one SDK client writing
// continuously (attemptTimeoutMs 700, requestTimeoutMs 1500, the settings of the fault-injection
// run in issue 16) and one probe client whose calls are short enough to time out while there is
// no leader. The leader is stopped for 5 s, then continued.
//
// A stopped process still has its sockets: the kernel accepts connections to it and holds what
// is sent, but nothing answers. Before the fix the SDK followed the backups' NOT_LEADER hints
// back to the stopped node and waited there for the whole pause; its timeout errors also named
// problems that earlier calls had met.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { KmbError } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import type { FaultProxy } from '../src/testing/fault_proxy.js';
import { Harness, sleep } from './harness.js';
import { TestCluster, createStreams, hangTimeoutMs } from './cluster_harness.js';

/** The cluster's election timeout, set explicitly so that the bound below is defined. */
const electionTimeoutMs = 1_000;
/** The longest election: the timeout plus its random extra of up to half of it. */
const electionMsMax = electionTimeoutMs * 1.5;
const attemptTimeoutMs = 700;
const requestTimeoutMs = 1_500;
/**
 * Room for this shared 2-core machine on top of election plus one attempt (a liveness bound: a
 * status poll, a scheduling delay, a backoff step). The pause is longer than the bound with it,
 * so waiting for the stopped node to come back cannot pass.
 */
const slackMs = 1_000;
const pauseMs = 5_000;
/** The probe's budgets: its calls time out while there is no leader. */
const probeAttemptTimeoutMs = 300;
const probeRequestTimeoutMs = 500;
/** Between two probe calls, so that a frame near a call's end is not taken for the next's. */
const probeGapMs = 100;
/** How late after a call's end the proxy may see a frame the call sent. */
const frameLagMs = 50;

interface Call {
  readonly startMs: number;
  readonly endMs: number;
  readonly error: KmbError | null;
}

/** Calls `append` until told to stop, recording each call's window and outcome. */
function writeLoop(
  client: Client,
  target: { tenantId: number; streamId: number },
  calls: Call[],
  running: () => boolean,
  gapMs = 0,
): Promise<void> {
  return (async () => {
    for (let n = 0; running(); n++) {
      const startMs = performance.now();
      let error: KmbError | null = null;
      try {
        await client.append({ ...target, events: [`e${n}`] });
      } catch (caught) {
        if (!(caught instanceof KmbError)) throw caught;
        error = caught;
      }
      calls.push({ startMs, endMs: performance.now(), error });
      if (gapMs > 0) await sleep(gapMs);
    }
  })();
}

/** The `tried …` part of a timeout message, entry by entry: address → what it says. */
function triedEntries(message: string, addresses: readonly string[]): Map<string, string> {
  const at = message.indexOf('; tried ');
  assert.ok(at >= 0, `a timeout names what was tried: ${message}`);
  const list = message.slice(at + '; tried '.length).replace(/; answers: .*$/, '');
  const starts = addresses
    .map((address) => ({ address, index: list.indexOf(`${address} (`) }))
    .filter((entry) => entry.index >= 0)
    .sort((a, b) => a.index - b.index);
  const entries = new Map<string, string>();
  for (const [i, entry] of starts.entries()) {
    const end = starts[i + 1]?.index ?? list.length;
    const text = list.slice(entry.index + entry.address.length + 2, end);
    entries.set(entry.address, text.replace(/\)(, )?$/, ''));
  }
  return entries;
}

/** An entry that says this call did nothing there. */
function untried(text: string): boolean {
  return /not tried|no failure recorded/.test(text);
}

test(
  'a leader paused with SIGSTOP: SDK writes resume within election plus one attempt timeout',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves issue 16 item 3 (the paused leader): while the old leader is stopped, the writer's
    // first append called after the stop is acknowledged within the longest election plus one
    // attempt timeout (plus slackMs), before the old leader is continued. And the timeout errors
    // the probe gets during the stop list only that call's attempts: the probe reaches each
    // replica through a proxy of its own, which records when the probe sent it a frame (a hello
    // or a request), so every address a timeout error lists with a problem must have had a frame
    // from the probe within that call. At least one probe call must time out, and the first
    // must name the stopped leader as not answering.
    const h = new Harness(t);
    const env = { KMB_CONSENSUS_ELECTION_TIMEOUT_MS: String(electionTimeoutMs) };
    const cluster = await TestCluster.start(h, { name: 'paused-leader', env });
    const first = await cluster.waitForLeader();
    const [target] = await createStreams(cluster, 'paused', 1);
    assert.ok(target !== undefined);

    const writer = await cluster.connect({ attemptTimeoutMs, requestTimeoutMs });
    const proxies: FaultProxy[] = [];
    for (const address of cluster.addresses) {
      const at = address.lastIndexOf(':');
      const target = { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
      proxies.push(await h.proxy({ target }));
    }
    const framesAt = proxies.map(() => [] as number[]);
    for (const [index, proxy] of proxies.entries()) {
      proxy.observe((frame) => {
        if (frame.direction === 'to_server') framesAt[index]?.push(performance.now());
      });
    }
    const probe = await h.connect({
      addresses: proxies.map((proxy) => proxy.address),
      clusterName: cluster.name,
      attemptTimeoutMs: probeAttemptTimeoutMs,
      requestTimeoutMs: probeRequestTimeoutMs,
    });

    const writes: Call[] = [];
    const probes: Call[] = [];
    let running = true;
    const loops = [
      writeLoop(writer, target, writes, () => running),
      writeLoop(probe, target, probes, () => running, probeGapMs),
    ];
    const leader = cluster.node(first.leader);
    let pausedAtMs = 0;
    let resumedAtMs = Infinity;
    try {
      await sleep(700); // Both clients write to the leader for a while.
      assert.ok(
        writes.some((call) => call.error === null),
        'the writer was acknowledged',
      );
      assert.ok(
        probes.some((call) => call.error === null),
        'the probe was acknowledged',
      );
      pausedAtMs = performance.now();
      process.kill(leader.pid, 'SIGSTOP');
      const resumed = () => writes.some((c) => c.startMs > pausedAtMs && c.error === null);
      while (!resumed() && performance.now() - pausedAtMs < pauseMs) await sleep(20);
      await sleep(Math.max(0, pauseMs - (performance.now() - pausedAtMs)));
    } finally {
      process.kill(leader.pid, 'SIGCONT');
      resumedAtMs = performance.now();
    }
    await sleep(1_000); // The old leader comes back as a backup; writes go on.
    running = false;
    await Promise.all(loops);

    const firstAck = writes.find((call) => call.startMs > pausedAtMs && call.error === null);
    const boundMs = electionMsMax + attemptTimeoutMs + slackMs;
    const ackMs = firstAck === undefined ? 'never' : Math.round(firstAck.endMs - pausedAtMs);
    const failures = writes.filter((c) => c.startMs > pausedAtMs && c.error !== null).length;
    t.diagnostic(
      `leader ${first.leader} stopped for ${pauseMs} ms; first append called after the stop ` +
        `acknowledged ${ackMs}` +
        ` ms after it (bound ${boundMs} ms); ${failures} writer calls failed during the stop`,
    );
    assert.ok(firstAck !== undefined, 'a write called after the stop was acknowledged');
    assert.ok(
      firstAck.endMs < resumedAtMs,
      `a write was acknowledged while the old leader was still stopped ` +
        `(${Math.round(firstAck.endMs - pausedAtMs)} ms after the stop, continued at ` +
        `${Math.round(resumedAtMs - pausedAtMs)} ms)`,
    );
    assert.ok(
      firstAck.endMs - pausedAtMs <= boundMs,
      `writes resumed ${Math.round(firstAck.endMs - pausedAtMs)} ms after the stop, ` +
        `more than ${boundMs} ms`,
    );

    const addresses = proxies.map((proxy) => proxy.address);
    const timedOut = probes.filter(
      (call) =>
        call.endMs > pausedAtMs &&
        call.endMs <= resumedAtMs &&
        call.error?.code === 'KMB_ERR_TIMEOUT',
    );
    t.diagnostic(
      `probe: ${timedOut.length} timeouts during the stop; first: ${timedOut[0]?.error?.message}`,
    );
    assert.ok(timedOut.length > 0, 'the probe timed out at least once during the stop');
    const stopped = addresses[first.leader] ?? '';
    const firstEntries = triedEntries(timedOut[0]?.error?.message ?? '', addresses);
    assert.match(firstEntries.get(stopped) ?? '', /no answer|no hello/, 'the stopped leader');
    for (const call of timedOut) {
      const message = call.error?.message ?? '';
      for (const [address, text] of triedEntries(message, addresses)) {
        if (untried(text)) continue;
        const index = addresses.indexOf(address);
        const sent = (framesAt[index] ?? []).some(
          (atMs) => atMs >= call.startMs && atMs <= call.endMs + frameLagMs,
        );
        assert.ok(
          sent,
          `a timeout lists ${address} (${text.trim()}) but the call sent it nothing: ${message}`,
        );
      }
    }
  },
);

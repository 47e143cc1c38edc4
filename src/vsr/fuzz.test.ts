// Randomised fault runs of the real replica in the deterministic harness (a small VOPR of our
// own, beside the simulator in src/testing): for each seed, clients write continuously while
// replicas crash and restart, the network drops, duplicates, delays and partitions messages,
// disks stall, and committed records are corrupted (and scrubbed). Safety is checked throughout
// (one committed history, acknowledged writes kept, nothing applied twice, equal states). Then
// every fault heals and the cluster must make progress: every client answered and every replica
// caught up (liveness). A failing seed is printed and replays identically.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Scenario } from './testing_harness.test-support.js';
import type { SimClient } from './testing_harness.test-support.js';
import type { Canary } from './replica.js';

interface FuzzOptions {
  readonly replicaCount: number;
  readonly seed: number;
  readonly ticks: number;
}

function describeState(t: Scenario): string {
  return t.nodes
    .map((n) =>
      n.alive
        ? `r${n.index}:${n.r.status}@v${n.r.view} ` +
          `commit ${n.r.commitMin}/${n.r.commitMax} op ${n.r.op}`
        : `r${n.index}:down`,
    )
    .join(', ');
}

function trace(t: Scenario, what: string): void {
  if (process.env['FUZZ_TRACE'] === undefined) return;
  const state = t.nodes.map((n) => {
    const status = n.alive ? n.r.status.slice(0, 4) : 'down';
    const replay = n.storage.replay();
    if (replay.intact) return status;
    const at = replay.prepares.length + 1;
    const slot = n.storage.slots.get(at);
    return `${status}!${at}${slot?.corrupt === true ? 'c' : 'x'}/${n.storage.opMax}`;
  });
  console.log(`t${t.now} ${what} | ${state.join(' ')}`);
}

/** One random fault (or none) for this tick. */
function injectFault(t: Scenario, random: () => number, crashMax: number): void {
  const roll = random() / Number(process.env['FUZZ_INTENSITY'] ?? 1);
  const storageFaults = t.nodes.length - Math.floor(t.nodes.length / 2) - 1 > 0;
  const pick = () => Math.floor(random() * t.nodes.length);
  const down = t.nodes.filter((n) => !n.alive);
  if (roll < 0.004 && down.length < crashMax) {
    const node = t.nodes[pick()];
    if (node !== undefined && node.alive) t.replica(node.index).crash();
    trace(t, `crash r${node?.index}`);
  } else if (roll < 0.012 && down.length > 0) {
    const node = down[Math.floor(random() * down.length)];
    if (node !== undefined) t.replica(node.index).restart();
    trace(t, `restart r${node?.index}`);
  } else if (roll < 0.016) {
    const a = pick();
    const others = t.nodes.map((n) => n.index).filter((i) => i !== a);
    t.partition([a], others);
  } else if (roll < 0.024) {
    t.heal();
  } else if (roll < 0.027) {
    const node = t.nodes[pick()];
    if (node !== undefined && node.alive) node.syncStalled = !node.syncStalled;
  } else if (roll < 0.029 && storageFaults) {
    corruptCommitted(t, random);
  }
}

/**
 * Flips a committed record on one replica. The fault model (as for crashes): storage faults on
 * one replica at a time, so at most one replica restarts with a journal cut short (it then waits
 * for start_view, and the others must still form a quorum).
 */
function corruptCommitted(t: Scenario, random: () => number): void {
  const node = t.nodes[Math.floor(random() * t.nodes.length)];
  if (node === undefined || !node.alive || node.r.commitMin < 2) return;
  const damaged = (n: (typeof t.nodes)[number]) =>
    n.storage.corruptDurably || (n.alive && n.r.status === 'recovering');
  if (t.nodes.some((n) => n !== node && damaged(n))) return;
  const op = 1 + Math.floor(random() * (node.r.commitMin - 1));
  if (node.storage.slots.has(op)) t.replica(node.index).corrupt(op);
  trace(t, `corrupt r${node.index} op ${op}`);
}

function keepWriting(clients: SimClient[], random: () => number): void {
  for (const client of clients) {
    if (client.idle && random() < 0.5) client.command(1 + Math.floor(random() * 5));
  }
}

function scenarioFor(options: FuzzOptions): Scenario {
  const canary = process.env['FUZZ_CANARY'] as Canary | undefined;
  const t = new Scenario({
    replicaCount: options.replicaCount,
    seed: options.seed,
    scrubReadsPerTickMax: 2,
    pipeline: 4,
    ...(canary === undefined ? {} : { canary }),
  });
  const intensity = Number(process.env['FUZZ_INTENSITY'] ?? 1);
  t.faults = {
    dropProbability: 0.02 * intensity,
    duplicateProbability: 0.02 * intensity,
    delayProbability: 0.05 * intensity,
    delayTicksMax: 20,
  };
  return t;
}

/** Safety phase: faults and writes, with the safety checks every 100 ticks. */
function safetyPhase(t: Scenario, clients: SimClient[], options: FuzzOptions): void {
  // Crashes beyond a minority are allowed (the cluster stalls until restarts); storage faults
  // only where a minority may be damaged at all.
  const crashMax = options.replicaCount - Math.floor(options.replicaCount / 2);
  for (let tick = 0; tick < options.ticks; tick++) {
    injectFault(t, t.random, crashMax);
    keepWriting(clients, t.random);
    t.run(1);
    if (tick % 100 === 0) {
      const violations = t.violations();
      assert.deepEqual(violations, [], `seed ${options.seed} tick ${tick}: ${describeState(t)}`);
    }
  }
}

/** Liveness phase: every fault heals; every client is answered and every replica catches up. */
function livenessPhase(t: Scenario, clients: SimClient[], options: FuzzOptions): void {
  t.faults = null;
  t.heal();
  for (const node of t.nodes) {
    node.syncStalled = false;
    if (!node.alive) t.replica(node.index).restart();
  }
  const what = () =>
    `seed ${options.seed}: ${describeState(t)}; ` +
    `intact ${t.nodes.map((n) => n.storage.replay().intact)}`;
  t.runUntil(
    () => clients.every((c) => c.idle),
    () => `clients answered (${what()})`,
    4_000,
  );
  const caughtUp = () => {
    const primary = t.primary();
    if (primary === null) return false;
    return t.nodes.every(
      (n) => n.alive && n.r.status === 'normal' && n.r.commitMin === primary.r.commitMin,
    );
  };
  t.runUntil(caughtUp, () => `every replica caught up (${what()})`, 4_000);
  assert.deepEqual(t.violations(), [], what());
}

function fuzz(options: FuzzOptions): void {
  const t = scenarioFor(options);
  const clients = Array.from({ length: 4 }, () => t.client().register());
  safetyPhase(t, clients, options);
  livenessPhase(t, clients, options);
  if (process.env['FUZZ_VERBOSE'] !== undefined) {
    const views = Math.max(...t.nodes.map((n) => n.r.view));
    const commit = t.primary()?.r.commitMin;
    const repaired = t.nodes.reduce((sum, n) => sum + n.r.stats.repairedCount, 0);
    console.log(`seed ${options.seed}: view ${views}, commit ${commit}, repaired ${repaired}`);
  }
}

// FUZZ_SEEDS / FUZZ_TICKS / FUZZ_REPLICAS widen a run by hand; npm test runs the fixed set.
const seedCount = Number(process.env['FUZZ_SEEDS'] ?? 12);
const ticks = Number(process.env['FUZZ_TICKS'] ?? 1_500);
const counts = (process.env['FUZZ_REPLICAS'] ?? '3,5').split(',').map(Number);

for (const replicaCount of counts) {
  describe(`fuzz, ${replicaCount} replicas`, () => {
    for (let seed = 1; seed <= seedCount; seed++) {
      it(`seed ${seed}`, () => {
        // Proves safety under random faults and liveness once they heal, for this seed.
        fuzz({ replicaCount, seed, ticks });
      });
    }
  });
}

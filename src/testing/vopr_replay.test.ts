// Proves that the VOPR is deterministic and that a failing seed, as printed, replays the
// identical run: the same seed gives the same trace hash (a fingerprint of every effect and
// every delivered packet), and the one-line reproduce command printed by `vopr run` for a
// failing seed, run again, fails the same way with the same trace hash. The failing seed comes
// from a canary when the replica has one that a checker catches; otherwise from a liveness
// bound too short to settle (a failure by construction), so the replay path is always tested.

import { strict as assert } from 'node:assert';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { runVopr, voprExitCodes } from '../cli/vopr.js';
import { runCanary } from './canary.js';
import { canaryNames } from './replica_adapter.js';
import { seedOptions, seedSets } from './seed_sets.js';
import { runSeed } from './simulator.js';

async function vopr(args: string[]): Promise<{ code: number; out: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
  const code = await runVopr(args, { stdout, stderr, stdin: new PassThrough(), env: {} });
  return { code, out: Buffer.concat(chunks).toString('utf8') };
}

/** The reproduce command's arguments (after `npm run vopr --`) and the trace hash printed. */
function parseFailure(out: string): { args: string[]; trace: string } {
  const command = /^reproduce: npm run vopr -- (.+)$/m.exec(out)?.[1];
  const trace = /^ {2}trace ([0-9a-f]{16})$/m.exec(out)?.[1];
  assert.ok(command !== undefined && trace !== undefined, `a failure report in:\n${out}`);
  return { args: command.split(' '), trace };
}

/** A failing run's reproduce arguments: a caught canary if there is one, else a short bound. */
function failingRun(): { args: string[]; source: string } {
  for (const canary of canaryNames) {
    const outcome = runCanary(canary, { seedStart: 1, seedCount: 8 });
    if (outcome.status === 'caught' && outcome.reproduce !== null) {
      return {
        args: outcome.reproduce.replace(/^npm run vopr -- /, '').split(' '),
        source: canary,
      };
    }
  }
  const args = ['run', '--seed', '77', '--replicas', '3', '--faults', 'none', '--ticks', '200'];
  return { args: [...args, '--liveness-ticks', '1'], source: 'liveness bound of 1 tick' };
}

describe('VOPR determinism and replay', () => {
  it('gives the same trace hash for the same seed, and different ones for different seeds', () => {
    // Proves determinism: two runs of one seed agree on the trace hash and every statistic.
    const hashes = new Set<string>();
    for (const set of [seedSets.one, seedSets.three, seedSets.five]) {
      for (const seed of [set.seedFirst, set.seedFirst + 1]) {
        const first = runSeed(seedOptions(set, seed));
        const second = runSeed(seedOptions(set, seed));
        assert.equal(first.traceHash, second.traceHash, `seed ${seed}, ${set.name}`);
        assert.deepEqual(first.stats, second.stats);
        hashes.add(first.traceHash);
      }
    }
    assert.equal(hashes.size, 6, 'different seeds give different runs');
  });

  it('replays a printed failing seed identically', async (t) => {
    // Proves the printed reproduce line replays the failure: same exit code, verdict, trace.
    const failing = failingRun();
    t.diagnostic(`failing run from: ${failing.source}`);
    const first = await vopr(failing.args);
    assert.notEqual(first.code, voprExitCodes.ok, first.out);
    const printed = parseFailure(first.out);
    const replay = await vopr(printed.args);
    assert.equal(replay.code, first.code, replay.out);
    assert.equal(parseFailure(replay.out).trace, printed.trace);
    const verdict = (out: string): string | undefined => /^FAIL seed .*$/m.exec(out)?.[0];
    assert.equal(verdict(replay.out), verdict(first.out));
  });

  it('prints a summary with rates, and exits 0 when every seed passes', async () => {
    // Proves the summary line's shape (seeds/s and ticks/s) and the success exit code.
    const { code, out } = await vopr(['run', '--seed', '5', '--count', '3', '--replicas', '1']);
    assert.equal(code, voprExitCodes.ok, out);
    assert.match(
      out,
      /^OK: 3 seed\(s\) run, 0 failed, in [\d.]+ s: [\d.]+ seeds\/s, [\d.]+ ticks\/s$/m,
    );
  });

  it('rejects bad arguments with the usage exit code', async () => {
    // Proves usage errors are told apart from run failures by their exit code.
    assert.equal((await vopr(['run', '--faults', 'gremlins'])).code, voprExitCodes.usage);
    assert.equal((await vopr(['run', '--replicas', '9'])).code, voprExitCodes.usage);
    assert.equal((await vopr(['run', '--canary', 'nope'])).code, voprExitCodes.usage);
  });
});

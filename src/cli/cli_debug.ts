// `kimberlite-cli debug profile --replica-id N [--duration 30s] [--heap] [--output FILE]`: the
// runbook's way to see where a replica spends its time. The CLI asks the replica (over the
// client protocol, like `replica status`) where its ops endpoint listens (`metrics_address` in
// its status), fetches /debug/pprof/profile?seconds=N (or /debug/pprof/heap) from there and
// writes the gzip'd pprof file it returns. Open it with `go tool pprof FILE` or any pprof
// viewer (docs/profiling.md).
//
// Exit codes: 0 written; 1 the replica did not answer, has no ops endpoint, or the profile
// request failed (the ops endpoint's error code is shown); 2 usage mistakes.

import { writeFile } from 'node:fs/promises';
import { kmbError } from '../core/errors.js';
import type { KmbError } from '../core/errors.js';
import { probeReplica } from './cli_cluster.js';
import type { OperatorContext } from './cli_cluster.js';
import { exitCodes, reportError, write, writeJson } from './cli_io.js';

export interface DebugProfileOptions {
  readonly replicaId: number;
  /** CPU profile length, 1 to 300 s (ignored for --heap). */
  readonly durationSeconds: number;
  readonly heap: boolean;
  /** Where to write the profile; default kimberlite-replica-N-{cpu|heap}-TIME.pb.gz. */
  readonly output: string | null;
}

/** Longest CPU profile the ops endpoint takes (profiler.ts). */
export const profileSecondsMax = 300;

/** Room beyond the profile's own length for the request and the transfer. */
const profileSlackMs = 15_000;

export async function debugProfile(
  context: OperatorContext,
  options: DebugProfileOptions,
): Promise<void> {
  const kind = options.heap ? 'heap' : 'cpu';
  const answer = await probeReplica(context, options.replicaId);
  if (!answer.reachable) return fail(context, answer.error);
  const ops = answer.value.raw['metrics_address'];
  if (typeof ops !== 'string' || ops === '') {
    const message =
      `replica ${options.replicaId} serves no ops endpoint ` +
      '(start it with --metrics-address, [telemetry] metrics_enabled = true)';
    return fail(context, kmbError('not_ready', message));
  }
  const path = options.heap
    ? '/debug/pprof/heap'
    : `/debug/pprof/profile?seconds=${options.durationSeconds}`;
  const url = `http://${ops}${path}`;
  const timeoutMs = (options.heap ? 0 : options.durationSeconds * 1000) + profileSlackMs;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return fail(context, kmbError('connection_lost', `${url}: ${reason}`));
  }
  const body = Buffer.from(await response.arrayBuffer());
  if (!response.ok) {
    const detail = body.toString('utf8').slice(0, 500);
    const error = kmbError('internal', `${url} answered ${response.status}: ${detail}`);
    return fail(context, error);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const output = options.output ?? `kimberlite-replica-${options.replicaId}-${kind}-${stamp}.pb.gz`;
  await writeFile(output, body);
  const result = {
    replica_id: options.replicaId,
    kind,
    seconds: options.heap ? null : options.durationSeconds,
    output,
    size_bytes: body.length,
    source: url,
  };
  if (context.globals.json) await writeJson(context.io, result);
  else {
    const what = options.heap ? 'heap profile' : `${options.durationSeconds} s CPU profile`;
    await write(
      context.io.stdout,
      `wrote the ${what} of replica ${options.replicaId} to ${output} (${body.length} bytes, ` +
        `pprof); open it with: go tool pprof -http=: ${output}\n`,
    );
  }
  context.exit.code = exitCodes.ok;
}

/** Reports `error` in the tools' format (stderr, or JSON with --json) and sets exit 1. */
async function fail(context: OperatorContext, error: KmbError): Promise<void> {
  context.exit.code = await reportError(context.io, error, context.globals.json);
}

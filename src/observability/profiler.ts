// Profiles of the running process for the ops endpoint (spec 000 "Performance Profiling"):
//
//   GET /debug/pprof/profile?seconds=N  CPU profile over the next N seconds (1..300, default
//                                       30), gzip'd pprof protobuf; `&format=cpuprofile` gives
//                                       V8's JSON instead, which Chrome DevTools opens.
//   GET /debug/pprof/heap               live-heap sample since the endpoint started, gzip'd
//                                       pprof; `?gc=1` collects garbage first;
//                                       `?format=heapprofile` gives V8's JSON for DevTools.
//
// Both go through node:inspector in this process (V8's sampling CPU profiler and sampling
// heap profiler); no flag or restart is needed. Heap sampling (one sample per ~512 KiB
// allocated, a negligible cost) runs from the first acquire() to the last release(), so a heap
// profile shows the objects still alive that were allocated in that time, like Go's inuse
// profile. Invariants: at most one CPU profile and at most one heap profile run in the process
// at a time (another request of the same kind gets 429 KMB_ERR_PROFILE_BUSY at once: a full
// garbage collection or a profile encoding per request, four loops at once, starved writes),
// and heap profiles take at most profileLimits.heapTimeShareMax of the process's time (one
// started sooner after the last gets the same 429, with Retry-After);
// a bad `seconds`, `format` or `gc` gets 400 KMB_ERR_INVALID_ARGUMENT before anything starts;
// when the caller's signal aborts (its client closed the connection) a CPU profile stops at
// once and a heap profile is dropped after the inspector call in flight, the profile is freed
// for the next request, and the call rejects with KMB_ERR_CONNECTION_LOST; release() of the
// last holder stops a running CPU profile at once.

import type { Profiler } from 'node:inspector';
import { Session } from 'node:inspector/promises';
import { errorCodes, kmbError, type ErrorCode } from '../core/errors.js';
import { cpuProfileToPprof, encodePprof, heapProfileToPprof } from './profile_pprof.js';
import type { V8HeapProfile } from './profile_pprof.js';

export const profileLimits = {
  secondsMin: 1,
  secondsMax: 300,
  /** Go's default for /debug/pprof/profile. */
  secondsDefault: 30,
  /** V8's CPU sampling interval: 1 kHz. */
  cpuIntervalUs: 1000,
  /** Average bytes allocated between two heap samples. */
  heapIntervalBytes: 512 * 1024,
  /**
   * Share of the process's time heap profiles may take. A heap profile blocks the process while
   * it runs (a gc=1 snapshot ~100 ms: a full collection, then the profile's conversion), so
   * after one that took d ms the next is refused for d × (1 / share − 1) ms. One client looping
   * gc=1 cut writes from ~9,000 to ~100 per 8 s without it.
   */
  heapTimeShareMax: 0.1,
  /** The longest such pause, whatever the last profile took. */
  heapCooldownMsMax: 10_000,
} as const;

export const profileErrorCodes = {
  invalid_argument: errorCodes.invalid_argument,
  busy: errorCodes.profile_busy,
} as const;

/** An HTTP answer, in the shape the ops server sends. */
export interface ProfileReply {
  statusCode: number;
  contentType: string;
  body: string | Uint8Array;
  headers?: Record<string, string>;
  /** The stable code of an error answer, for kmb_errors_total. */
  errorCode?: ErrorCode;
}

export type ProfileKind = 'cpu' | 'heap';

export type ProfileRequest =
  | { ok: true; seconds: number; format: 'pprof' | 'v8'; gc: boolean }
  | { ok: false; message: string };

const v8FormatName: Record<ProfileKind, string> = { cpu: 'cpuprofile', heap: 'heapprofile' };

/** Reads `seconds`, `format` and `gc` from a query; anything malformed is refused. */
export function parseProfileRequest(query: URLSearchParams, kind: ProfileKind): ProfileRequest {
  const { secondsMin, secondsMax, secondsDefault } = profileLimits;
  const secondsText = query.get('seconds');
  let seconds: number = secondsDefault;
  if (kind === 'cpu' && secondsText !== null) {
    seconds = /^\d{1,6}$/.test(secondsText) ? Number(secondsText) : NaN;
    if (!(seconds >= secondsMin && seconds <= secondsMax)) {
      const message = `seconds must be a whole number in ${secondsMin}..${secondsMax}`;
      return { ok: false, message: `${message}, not ${JSON.stringify(secondsText)}` };
    }
  }
  const formatText = query.get('format') ?? 'pprof';
  if (formatText !== 'pprof' && formatText !== v8FormatName[kind]) {
    const message = `format must be pprof or ${v8FormatName[kind]}`;
    return { ok: false, message: `${message}, not ${JSON.stringify(formatText)}` };
  }
  const gcText = query.get('gc') ?? '0';
  if (gcText !== '0' && gcText !== '1') {
    return { ok: false, message: `gc must be 0 or 1, not ${JSON.stringify(gcText)}` };
  }
  return { ok: true, seconds, format: formatText === 'pprof' ? 'pprof' : 'v8', gc: gcText === '1' };
}

function errorReply(statusCode: number, code: ErrorCode, message: string): ProfileReply {
  const body = JSON.stringify({ error: { code, message } });
  return { statusCode, contentType: 'application/json; charset=utf-8', body, errorCode: code };
}

function fileReply(body: string | Uint8Array, fileName: string): ProfileReply {
  const json = typeof body === 'string';
  return {
    statusCode: 200,
    contentType: json ? 'application/json; charset=utf-8' : 'application/octet-stream',
    body,
    headers: { 'content-disposition': `attachment; filename="${fileName}"` },
  };
}

interface RunningProfile {
  /** Ends the sampling wait early (the last holder released the profiler). */
  readonly finish: () => void;
}

/** The process's one inspector session, shared by every ops server in the process. */
class ProcessProfiler {
  private session: Session | null = null;
  private holderCount = 0;
  private running: RunningProfile | null = null;
  private readonly busy: Record<ProfileKind, boolean> = { cpu: false, heap: false };
  /** Date.now() before which a new heap profile is refused (heapTimeShareMax). */
  private heapReadyAtMs = 0;

  acquire(): () => void {
    this.holderCount += 1;
    if (this.session === null) {
      const session = new Session();
      session.connect();
      this.session = session;
      const samplingInterval = profileLimits.heapIntervalBytes;
      // The session answers in order, so a heap request never overtakes this.
      void session.post('HeapProfiler.startSampling', { samplingInterval }).catch(() => undefined);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holderCount -= 1;
      if (this.holderCount === 0) this.stop();
    };
  }

  private stop(): void {
    this.running?.finish();
    const session = this.session;
    this.session = null;
    // Disconnecting ends both profilers; the stop calls are courtesy and may race with it.
    void session?.post('HeapProfiler.stopSampling').catch(() => undefined);
    session?.disconnect();
  }

  async cpu(
    request: { seconds: number; format: 'pprof' | 'v8' },
    signal: AbortSignal,
  ): Promise<ProfileReply> {
    const session = this.session;
    if (session === null) return errorReply(503, errorCodes.shutting_down, 'profiler is closed');
    if (this.busy.cpu) return busyReply('cpu');
    this.busy.cpu = true;
    try {
      const startedAtMs = Date.now();
      const profile = await this.sampleCpu(session, request.seconds, signal);
      throwIfCancelled(signal, 'cpu');
      if (request.format === 'v8') {
        return fileReply(JSON.stringify(profile), 'kimberlite.cpuprofile');
      }
      const pprof = cpuProfileToPprof(profile, profileLimits.cpuIntervalUs, startedAtMs);
      return fileReply(await encodePprof(pprof), 'profile.pb.gz');
    } finally {
      this.busy.cpu = false;
    }
  }

  /** Samples for `seconds`, or until the signal aborts or the last holder releases. */
  private async sampleCpu(
    session: Session,
    seconds: number,
    signal: AbortSignal,
  ): Promise<Profiler.Profile> {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: profileLimits.cpuIntervalUs });
    await session.post('Profiler.start');
    await new Promise<void>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', finish);
        this.running = null;
        resolve();
      };
      const timer = setTimeout(finish, seconds * 1000);
      this.running = { finish };
      if (signal.aborted) finish();
      else signal.addEventListener('abort', finish, { once: true });
    });
    const { profile } = await session.post('Profiler.stop');
    await session.post('Profiler.disable');
    return profile;
  }

  heapWaitMs(nowMs: number): number {
    return Math.max(0, this.heapReadyAtMs - nowMs);
  }

  async heap(
    request: { format: 'pprof' | 'v8'; gc: boolean },
    signal: AbortSignal,
  ): Promise<ProfileReply> {
    const session = this.session;
    if (session === null) return errorReply(503, errorCodes.shutting_down, 'profiler is closed');
    if (this.busy.heap) return busyReply('heap');
    const startedAtMs = Date.now();
    if (startedAtMs < this.heapReadyAtMs) return cooldownReply(this.heapReadyAtMs - startedAtMs);
    this.busy.heap = true;
    try {
      throwIfCancelled(signal, 'heap');
      if (request.gc) await session.post('HeapProfiler.collectGarbage');
      throwIfCancelled(signal, 'heap');
      const result = await session.post('HeapProfiler.getSamplingProfile');
      throwIfCancelled(signal, 'heap');
      const profile = result.profile as unknown as V8HeapProfile;
      if (request.format === 'v8')
        return fileReply(JSON.stringify(profile), 'kimberlite.heapprofile');
      const pprof = heapProfileToPprof(profile, profileLimits.heapIntervalBytes, Date.now());
      return fileReply(await encodePprof(pprof), 'heap.pb.gz');
    } finally {
      this.busy.heap = false;
      this.heapReadyAtMs = heapReadyAtMs(startedAtMs, Date.now());
    }
  }
}

/** How long from `nowMs` until a heap profile may start; 0 when one may start now. */
export function heapProfileWaitMs(nowMs: number = Date.now()): number {
  return processProfiler.heapWaitMs(nowMs);
}

/** When the next heap profile may start, given when the last one started and ended. */
export function heapReadyAtMs(startedAtMs: number, endedAtMs: number): number {
  const { heapTimeShareMax, heapCooldownMsMax } = profileLimits;
  const tookMs = Math.max(0, endedAtMs - startedAtMs);
  return endedAtMs + Math.min(heapCooldownMsMax, tookMs * (1 / heapTimeShareMax - 1));
}

function cooldownReply(waitMs: number): ProfileReply {
  const share = `${Math.round(profileLimits.heapTimeShareMax * 100)}%`;
  const message =
    `heap profiles may take at most ${share} of the process's time; ` +
    `retry in ${(waitMs / 1000).toFixed(1)} s`;
  const reply = errorReply(429, profileErrorCodes.busy, message);
  return { ...reply, headers: { 'retry-after': String(Math.ceil(waitMs / 1000)) } };
}

function busyReply(kind: ProfileKind): ProfileReply {
  const what = kind === 'cpu' ? 'CPU profile' : 'heap profile';
  const message = `another ${what} is running in this process; retry when it ends`;
  return errorReply(429, profileErrorCodes.busy, message);
}

/** Rejects with KMB_ERR_CONNECTION_LOST once the client has gone. */
function throwIfCancelled(signal: AbortSignal, kind: ProfileKind): void {
  if (!signal.aborted) return;
  throw kmbError('connection_lost', `${kind} profile cancelled: the client closed the connection`);
}

const processProfiler = new ProcessProfiler();

/** Starts heap sampling (if not yet running); call the result when the endpoint closes. */
export function acquireProfiler(): () => void {
  return processProfiler.acquire();
}

/**
 * The answer to GET /debug/pprof/profile or /debug/pprof/heap with this query. `signal` aborts
 * when the client goes; the profile then stops and this rejects with KMB_ERR_CONNECTION_LOST.
 */
export async function profileReply(
  kind: ProfileKind,
  query: URLSearchParams,
  signal: AbortSignal = new AbortController().signal,
): Promise<ProfileReply> {
  const request = parseProfileRequest(query, kind);
  if (!request.ok) return errorReply(400, profileErrorCodes.invalid_argument, request.message);
  return kind === 'cpu'
    ? processProfiler.cpu(request, signal)
    : processProfiler.heap(request, signal);
}

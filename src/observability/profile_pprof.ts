// Converts V8's profiles (as node:inspector returns them) into the pprof protobuf that
// `go tool pprof` and the standalone `pprof` read, using the pprof-format encoder. Two shapes:
//
//   CPU  (Profiler.stop):  sample types samples/count and cpu/nanoseconds; one pprof sample per
//        distinct leaf node of V8's call tree, valued by the samples that hit it and the time
//        between them; period type cpu/nanoseconds, period = the sampling interval.
//   heap (HeapProfiler.getSamplingProfile): sample types inuse_objects/count and
//        inuse_space/bytes, like Go's heap profile. V8 samples one allocation per ~interval
//        bytes, so each sampled allocation of `size` bytes stands for 1 / (1 - e^(-size/interval))
//        allocations of that size; values are scaled by that factor (Go scales the same way).
//
// Stacks list locations leaf first (pprof's order). V8's synthetic (root) node is dropped;
// (program), (idle) and (garbage collector) stay as one-frame stacks, so time spent outside
// JavaScript is visible. Functions and locations are deduplicated by name, file, line, column.
// Invariants: every location id and function id in the output is 1-based and defined; line
// numbers are 1-based (V8's are 0-based, and -1 means unknown, written as 0).

import type { Profiler } from 'node:inspector';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { Function as PprofFunction, Location, Profile, Sample, StringTable } from 'pprof-format';
import { ValueType } from 'pprof-format';

const gzipAsync = promisify(gzip);

/** The call frame fields both V8 profile kinds carry. */
export interface V8CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

/** A node of the sampling heap profile; node:inspector's types omit `id`. */
export interface V8HeapNode {
  readonly id: number;
  readonly callFrame: V8CallFrame;
  readonly selfSize: number;
  readonly children: readonly V8HeapNode[];
}

/** The sampling heap profile; node:inspector's types omit `samples`. */
export interface V8HeapProfile {
  readonly head: V8HeapNode;
  readonly samples: readonly { readonly size: number; readonly nodeId: number }[];
}

const rootName = '(root)';

/** Builds the string, function and location tables while samples are added. */
class ProfileBuilder {
  readonly strings = new StringTable();
  readonly functions: PprofFunction[] = [];
  readonly locations: Location[] = [];
  readonly samples: Sample[] = [];
  private readonly functionIds = new Map<string, number>();
  private readonly locationIds = new Map<string, number>();

  location(frame: V8CallFrame): number {
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    const line = frame.lineNumber >= 0 ? frame.lineNumber + 1 : 0;
    const column = frame.columnNumber >= 0 ? frame.columnNumber + 1 : 0;
    const key = `${name}\u0000${frame.url}\u0000${line}\u0000${column}`;
    const known = this.locationIds.get(key);
    if (known !== undefined) return known;
    const functionId = this.function(name, frame.url, line);
    const id = this.locations.length + 1;
    this.locations.push(new Location({ id, line: [{ functionId, line, column }] }));
    this.locationIds.set(key, id);
    return id;
  }

  private function(name: string, url: string, line: number): number {
    const key = `${name}\u0000${url}\u0000${line}`;
    const known = this.functionIds.get(key);
    if (known !== undefined) return known;
    const id = this.functions.length + 1;
    const nameIndex = this.strings.dedup(name);
    const fn = new PprofFunction({
      id,
      name: nameIndex,
      systemName: nameIndex,
      filename: this.strings.dedup(url),
      startLine: line,
    });
    this.functions.push(fn);
    this.functionIds.set(key, id);
    return id;
  }

  valueType(type: string, unit: string): ValueType {
    return new ValueType({ type: this.strings.dedup(type), unit: this.strings.dedup(unit) });
  }
}

/** Leaf-first location ids of a node: the node, its parent, … up to (not including) (root). */
function stackOf(
  builder: ProfileBuilder,
  frames: ReadonlyMap<number, V8CallFrame>,
  parents: ReadonlyMap<number, number>,
  leafId: number,
): number[] {
  const stack: number[] = [];
  let id: number | undefined = leafId;
  while (id !== undefined) {
    const frame = frames.get(id);
    if (frame === undefined || frame.functionName === rootName) break;
    stack.push(builder.location(frame));
    id = parents.get(id);
  }
  return stack;
}

/**
 * The pprof profile of a V8 CPU profile taken with the given sampling interval, started at
 * `startedAtMs` (wall clock; V8's own start time is on a monotonic clock with another origin).
 */
export function cpuProfileToPprof(
  profile: Profiler.Profile,
  intervalUs: number,
  startedAtMs: number,
): Profile {
  const builder = new ProfileBuilder();
  const frames = new Map<number, V8CallFrame>();
  const parents = new Map<number, number>();
  for (const node of profile.nodes) {
    frames.set(node.id, node.callFrame);
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const hits = new Map<number, { count: number; timeUs: number }>();
  const sampleIds = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  sampleIds.forEach((nodeId, index) => {
    const entry = hits.get(nodeId) ?? { count: 0, timeUs: 0 };
    entry.count += 1;
    entry.timeUs += Math.max(0, deltas[index] ?? intervalUs);
    hits.set(nodeId, entry);
  });
  for (const [nodeId, { count, timeUs }] of hits) {
    const locationId = stackOf(builder, frames, parents, nodeId);
    if (locationId.length === 0) continue;
    builder.samples.push(new Sample({ locationId, value: [count, Math.round(timeUs * 1000)] }));
  }
  const sampleType = [
    builder.valueType('samples', 'count'),
    builder.valueType('cpu', 'nanoseconds'),
  ];
  return new Profile({
    sampleType,
    sample: builder.samples,
    location: builder.locations,
    function: builder.functions,
    stringTable: builder.strings,
    timeNanos: BigInt(Math.round(startedAtMs)) * 1_000_000n,
    durationNanos: Math.round(Math.max(0, profile.endTime - profile.startTime) * 1000),
    periodType: builder.valueType('cpu', 'nanoseconds'),
    period: intervalUs * 1000,
  });
}

/** How many allocations of `sizeBytes` one sample stands for (see the top of the file). */
export function heapScale(sizeBytes: number, intervalBytes: number): number {
  if (sizeBytes <= 0 || intervalBytes <= 0) return 1;
  return 1 / (1 - Math.exp(-sizeBytes / intervalBytes));
}

/** The pprof profile of a V8 sampling heap profile (live objects) at the given interval. */
export function heapProfileToPprof(
  profile: V8HeapProfile,
  intervalBytes: number,
  timeMs: number,
): Profile {
  const builder = new ProfileBuilder();
  const frames = new Map<number, V8CallFrame>();
  const parents = new Map<number, number>();
  const pending: V8HeapNode[] = [profile.head];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    frames.set(node.id, node.callFrame);
    for (const child of node.children) {
      parents.set(child.id, node.id);
      pending.push(child);
    }
  }
  const totals = new Map<number, { objects: number; bytes: number }>();
  for (const sample of profile.samples) {
    const scale = heapScale(sample.size, intervalBytes);
    const entry = totals.get(sample.nodeId) ?? { objects: 0, bytes: 0 };
    entry.objects += scale;
    entry.bytes += sample.size * scale;
    totals.set(sample.nodeId, entry);
  }
  for (const [nodeId, { objects, bytes }] of totals) {
    const locationId = stackOf(builder, frames, parents, nodeId);
    if (locationId.length === 0) continue;
    const value = [Math.round(objects), Math.round(bytes)];
    builder.samples.push(new Sample({ locationId, value }));
  }
  return new Profile({
    sampleType: [
      builder.valueType('inuse_objects', 'count'),
      builder.valueType('inuse_space', 'bytes'),
    ],
    sample: builder.samples,
    location: builder.locations,
    function: builder.functions,
    stringTable: builder.strings,
    timeNanos: BigInt(Math.round(timeMs)) * 1_000_000n,
    periodType: builder.valueType('space', 'bytes'),
    period: intervalBytes,
  });
}

/** The gzip'd protobuf encoding, as `pprof` expects on disk and over HTTP. */
export async function encodePprof(profile: Profile): Promise<Uint8Array> {
  return gzipAsync(await profile.encodeAsync());
}

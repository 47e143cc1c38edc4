// Proves the append coalescer's contract with a fake `send` that records every command and is
// answered by the test: appends made in one tick travel in one command; while every slot is
// busy, later appends wait and leave together when a slot frees; each call gets its own
// contiguous offsets in call order; the event-count and byte bounds hold; streams never mix; a
// failed command fails each call in it (and only those); a count the server did not echo fails
// the calls; too many waiting events are refused with KMB_ERR_BACKPRESSURE. A property test
// drives random calls, sizes and completion orders and checks every invariant at once.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { KmbError, kmbError } from '../core/errors.js';
import { asOffset } from '../core/types.js';
import { AppendCoalescer, eventFramingBytes } from './append_coalescer.js';
import type { AppendCoalescerOptions } from './append_coalescer.js';
import type { AppendResult } from './results.js';

interface Sent {
  readonly template: string;
  readonly events: Uint8Array[];
  readonly answer: (firstOffset: number, count?: number) => void;
  readonly fail: (error: unknown) => void;
}

function harness(options: Partial<AppendCoalescerOptions<string>> = {}) {
  const sent: Sent[] = [];
  const coalescer = new AppendCoalescer<string>({
    slotCountMax: 1,
    eventCountMax: 1000,
    bodySizeBytesMax: 1 << 20,
    pendingEventCountMax: 10_000,
    send: (template, events) =>
      new Promise<AppendResult>((resolve, reject) => {
        sent.push({
          template,
          events,
          answer: (firstOffset, count = events.length) =>
            resolve({ firstOffset: asOffset(firstOffset), count, chainHead: 'ab'.repeat(32) }),
          fail: reject,
        });
      }),
    ...options,
  });
  return { sent, coalescer };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const event = (byte: number, sizeBytes = 4): Uint8Array => new Uint8Array(sizeBytes).fill(byte);

describe('append coalescer', () => {
  it('sends appends made in one tick as one command and splits its offsets in call order', async () => {
    const { sent, coalescer } = harness();
    const calls = [1, 2, 3].map((n) =>
      coalescer.append(
        's',
        's',
        Array.from({ length: n }, () => event(n)),
      ),
    );
    await tick();
    assert.equal(sent.length, 1);
    assert.deepEqual(
      sent[0]!.events.map((e) => e[0]),
      [1, 2, 2, 3, 3, 3],
    );
    sent[0]!.answer(10);
    const results = await Promise.all(calls);
    assert.deepEqual(
      results.map((r) => [r.firstOffset, r.count]),
      [
        [10, 1],
        [11, 2],
        [13, 3],
      ],
    );
    assert.equal(coalescer.inFlight, 0);
  });

  it('holds appends while every slot is busy and sends them together when one frees', async () => {
    const { sent, coalescer } = harness({ slotCountMax: 2 });
    const first = coalescer.append('s', 's', [event(1)]);
    await tick();
    const second = coalescer.append('s', 's', [event(2)]);
    await tick();
    assert.equal(sent.length, 2, 'a free slot takes the next append at once');
    const waiting = [3, 4, 5].map((n) => coalescer.append('s', 's', [event(n)]));
    await tick();
    assert.equal(sent.length, 2, 'no slot is free: the appends wait');
    assert.equal(coalescer.pending, 3);
    sent[1]!.answer(1);
    assert.equal((await second).firstOffset, 1);
    await tick();
    assert.equal(sent.length, 3);
    assert.deepEqual(
      sent[2]!.events.map((e) => e[0]),
      [3, 4, 5],
    );
    sent[0]!.answer(0);
    sent[2]!.answer(2);
    assert.equal((await first).firstOffset, 0);
    assert.deepEqual(
      (await Promise.all(waiting)).map((r) => r.firstOffset),
      [2, 3, 4],
    );
  });

  it('keeps streams apart and bounds each command by events and bytes', async () => {
    const { sent, coalescer } = harness({
      eventCountMax: 3,
      bodySizeBytesMax: 2 * (100 + eventFramingBytes),
      slotCountMax: 8,
    });
    void coalescer.append('a', 'a', [event(1), event(1)]);
    void coalescer.append('b', 'b', [event(2)]);
    void coalescer.append('a', 'a', [event(3), event(3)]);
    void coalescer.append('c', 'c', [event(4, 100)]);
    void coalescer.append('c', 'c', [event(5, 100)]);
    void coalescer.append('c', 'c', [event(6, 100)]);
    await tick();
    for (const command of sent) {
      assert.ok(command.events.length <= 3, 'at most eventCountMax events');
      const bytes = command.events.reduce((sum, e) => sum + e.length + eventFramingBytes, 0);
      assert.ok(bytes <= 2 * (100 + eventFramingBytes), 'at most bodySizeBytesMax bytes');
      const marks = new Set(command.events.map((e) => e[0]));
      const template = command.template;
      for (const mark of marks) {
        assert.ok(mark !== undefined);
        const stream = mark === 2 ? 'b' : mark >= 4 ? 'c' : 'a';
        assert.equal(stream, template, 'a command carries one stream only');
      }
    }
    const eventCount = sent.reduce((sum, command) => sum + command.events.length, 0);
    assert.equal(eventCount, 8);
  });

  it('fails every call of a failed command, and only those', async () => {
    const { sent, coalescer } = harness();
    const together = [
      coalescer.append('s', 's', [event(1)]),
      coalescer.append('s', 's', [event(2)]),
    ];
    await tick();
    const later = coalescer.append('s', 's', [event(3)]);
    sent[0]!.fail(kmbError('stream_not_found', 'no such stream'));
    for (const call of together) {
      await assert.rejects(
        call,
        (e: unknown) => e instanceof KmbError && e.code === 'KMB_ERR_STREAM_NOT_FOUND',
      );
    }
    await tick();
    sent[1]!.answer(0);
    assert.equal((await later).count, 1);
  });

  it('fails the calls when the answer counts other events than were sent', async () => {
    const { sent, coalescer } = harness();
    const calls = [coalescer.append('s', 's', [event(1)]), coalescer.append('s', 's', [event(2)])];
    await tick();
    sent[0]!.answer(0, 1);
    for (const call of calls) {
      await assert.rejects(
        call,
        (e: unknown) => e instanceof KmbError && e.code === 'KMB_ERR_FRAME_MALFORMED',
      );
    }
  });

  it('refuses appends beyond the waiting bound with KMB_ERR_BACKPRESSURE', async () => {
    const { sent, coalescer } = harness({ eventCountMax: 2, pendingEventCountMax: 4 });
    void coalescer.append('s', 's', [event(1)]);
    await tick(); // In flight now: it no longer counts as waiting.
    void coalescer.append('s', 's', [event(2), event(2), event(2)]);
    await assert.rejects(
      coalescer.append('s', 's', [event(3), event(3)]),
      (e: unknown) => e instanceof KmbError && e.code === 'KMB_ERR_BACKPRESSURE',
    );
    assert.equal(sent.length, 1);
    assert.equal(coalescer.pending, 3);
  });

  it('keeps every invariant for random calls, sizes and answer orders', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          slotCountMax: fc.integer({ min: 1, max: 4 }),
          eventCountMax: fc.integer({ min: 1, max: 6 }),
          bursts: fc.array(
            fc.array(
              fc.record({
                stream: fc.constantFrom('a', 'b'),
                sizes: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 4 }),
              }),
              { minLength: 1, maxLength: 6 },
            ),
            { minLength: 1, maxLength: 5 },
          ),
          answerOrder: fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
        }),
        async ({ slotCountMax, eventCountMax, bursts, answerOrder }) => {
          const bodySizeBytesMax = 3 * (40 + eventFramingBytes);
          const { sent, coalescer } = harness({ slotCountMax, eventCountMax, bodySizeBytesMax });
          const nextOffset = new Map<string, number>();
          const calls: Array<{
            stream: string;
            events: Uint8Array[];
            done: Promise<AppendResult>;
          }> = [];
          let mark = 0;
          let answered = 0;
          const answerOne = (pick: number): void => {
            const open = sent.filter((_, i) => i >= answered);
            if (open.length === 0) return;
            // Answer the oldest open command of a stream, picked at random (streams are independent,
            // a stream's own commands answer in order as one session would).
            const command = open[pick % open.length]!;
            const index = sent.indexOf(command);
            sent.splice(index, 1);
            sent.splice(answered, 0, command);
            answered += 1;
            const first = nextOffset.get(command.template) ?? 0;
            nextOffset.set(command.template, first + command.events.length);
            command.answer(first);
          };
          for (const [b, burst] of bursts.entries()) {
            for (const { stream, sizes } of burst) {
              const events = sizes.map((size) => {
                mark += 1;
                const bytes = new Uint8Array(size + 4);
                new DataView(bytes.buffer).setUint32(0, mark);
                return bytes;
              });
              calls.push({ stream, events, done: coalescer.append(stream, stream, events) });
            }
            await tick();
            answerOne(answerOrder[b] ?? 0);
            await tick();
          }
          for (let i = 0; answered < sent.length || coalescer.pending > 0; i++) {
            answerOne(answerOrder[i % answerOrder.length] ?? i);
            await tick();
            assert.ok(i < 10_000, 'the coalescer drains');
          }
          for (const command of sent) {
            assert.ok(command.events.length >= 1);
            const bytes = command.events.reduce((s, e) => s + e.length + eventFramingBytes, 0);
            // A single call may exceed the bounds alone (the client refuses it later); merged ones may not.
            const single = calls.some(
              (c) =>
                c.events.length === command.events.length &&
                c.events.every((e, i) => e === command.events[i]),
            );
            if (!single) {
              assert.ok(command.events.length <= eventCountMax, 'event bound');
              assert.ok(bytes <= bodySizeBytesMax, 'byte bound');
            }
          }
          if (slotCountMax === 1) {
            // One slot: commands leave in call order across streams too.
            const marks = sent.flatMap((c) =>
              c.events.map((e) => new DataView(e.buffer).getUint32(0)),
            );
            marks.forEach((m, i) => assert.ok(i === 0 || m > marks[i - 1]!, 'call order'));
          }
          // Each call's events are found at its own offsets, contiguous, in call order per stream.
          const byStream = new Map<string, Uint8Array[]>();
          for (const command of sent) {
            const list = byStream.get(command.template) ?? [];
            list.push(...command.events);
            byStream.set(command.template, list);
          }
          const lastOffset = new Map<string, number>();
          for (const call of calls) {
            const result = await call.done;
            assert.equal(result.count, call.events.length);
            const log = byStream.get(call.stream)!;
            call.events.forEach((e, i) => assert.equal(log[result.firstOffset + i], e));
            if (slotCountMax === 1) {
              const previous = lastOffset.get(call.stream) ?? -1;
              assert.ok(result.firstOffset > previous, 'one slot keeps call order');
              lastOffset.set(call.stream, result.firstOffset);
            }
          }
          assert.equal(coalescer.inFlight, 0);
        },
      ),
      { numRuns: 150 },
    );
  });
});

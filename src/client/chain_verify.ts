// Offline verification of one stream's hash chain (DESIGN.md §5, src/kernel/chain.ts): given
// the stream's events read from offset 0 and its tenant and stream ids, recompute every link
// from the genesis and compare the last one with the chain head the cluster reports. No trust
// in the server is needed beyond the ids: a changed, missing, reordered or re-timed event
// changes the recomputed head.

import { checksumEqual, fromHex, sha256SizeBytes, toHex } from '../core/checksum.js';
import { kmbError } from '../core/errors.js';
import { asOffset, asStreamId, asTenantId, asTimestampUs } from '../core/types.js';
import { eventLink, streamGenesis } from '../kernel/kernel.js';

/** An event as needed to recompute its link (a {@link StreamEvent} fits). */
export interface ChainEvent {
  readonly offset: number;
  readonly timestampUs: number;
  readonly data: Uint8Array;
}

/** What to verify. */
export interface ChainInput {
  readonly tenantId: number;
  readonly streamId: number;
  /** Every event of the stream from offset 0, in order. */
  readonly events: Iterable<ChainEvent>;
  /** The head to compare with (hex or bytes), e.g. {@link StreamSummary.chainHead}. */
  readonly expectedHead?: string | Uint8Array;
}

/** The verdict: the recomputed head, and the first problem found if any. */
export type ChainVerdict =
  | { readonly ok: true; readonly eventCount: number; readonly chainHead: string }
  | {
      readonly ok: false;
      readonly eventCount: number;
      readonly chainHead: string;
      /** The offset where the chain breaks, or null when only the head differs. */
      readonly offset: number | null;
      readonly problem: string;
    };

function checkU53(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw kmbError('invalid_argument', `${what} must be a non-negative integer`);
  }
}

function expectedHeadBytes(head: string | Uint8Array): Uint8Array {
  if (typeof head !== 'string') return head;
  if (!/^[0-9a-fA-F]{64}$/.test(head)) {
    throw kmbError('invalid_argument', 'expectedHead must be 64 hex characters');
  }
  return fromHex(head.toLowerCase());
}

/** Recomputes a stream's chain from its events and checks it against the expected head. */
export function verifyStreamChain(input: ChainInput): ChainVerdict {
  checkU53(input.tenantId, 'tenantId');
  checkU53(input.streamId, 'streamId');
  let link = streamGenesis(asTenantId(input.tenantId), asStreamId(input.streamId));
  let eventCount = 0;
  for (const event of input.events) {
    if (event.offset !== eventCount) {
      const problem = `expected offset ${eventCount} but found offset ${event.offset}`;
      return { ok: false, eventCount, chainHead: toHex(link), offset: eventCount, problem };
    }
    checkU53(event.timestampUs, `timestampUs of offset ${event.offset}`);
    link = eventLink(link, asOffset(event.offset), asTimestampUs(event.timestampUs), event.data);
    eventCount += 1;
  }
  const chainHead = toHex(link);
  if (input.expectedHead !== undefined) {
    const expected = expectedHeadBytes(input.expectedHead);
    if (expected.length !== sha256SizeBytes || !checksumEqual(expected, link)) {
      const problem =
        `recomputed head ${chainHead} after ${eventCount} events differs from ` +
        `the expected head ${toHex(expected)}`;
      return { ok: false, eventCount, chainHead, offset: null, problem };
    }
  }
  return { ok: true, eventCount, chainHead };
}

// What one call of the SDK met at each address, for the message of its KMB_ERR_TIMEOUT (and of
// connect()'s). A log belongs to one call and lives as long as it: what other calls met, before
// or at the same time, is never in it, so the message says what this call tried and nothing it
// did not. An address the call never reached is listed as "not tried in this call".
//
// Bounds: at most problemsPerAddressMax distinct problems per address (a repeat is counted, not
// added), and the addresses are the client's own (at most clientLimits.addressCountMax). A log is
// made only when a call meets its first problem: a call answered at once costs nothing here.

import type { Address } from './address.js';
import { formatAddress } from './address.js';

/** Distinct problems kept per address; later new ones are counted as "more". */
export const problemsPerAddressMax = 4;

interface Problem {
  readonly text: string;
  count: number;
}

interface AddressLog {
  readonly problems: Problem[];
  /** Problems past problemsPerAddressMax that were not kept. */
  more: number;
}

export class CallLog {
  private readonly byAddress = new Map<string, AddressLog>();

  /** Records a problem this call met at `address`. */
  note(address: Address, problem: string): void {
    const key = formatAddress(address);
    let log = this.byAddress.get(key);
    if (log === undefined) {
      log = { problems: [], more: 0 };
      this.byAddress.set(key, log);
    }
    const same = log.problems.find((entry) => entry.text === problem);
    if (same !== undefined) same.count += 1;
    else if (log.problems.length < problemsPerAddressMax)
      log.problems.push({ text: problem, count: 1 });
    else log.more += 1;
  }

  /** Whether this call met a problem at `address`. */
  tried(address: Address): boolean {
    return this.byAddress.has(formatAddress(address));
  }

  /**
   * Every address with what this call met there, in the given order:
   * `a:1 (no answer in 700 ms), b:2 (KMB_ERR_NOT_LEADER: replica 0 is leader ×2), c:3 (not tried
   * in this call)`.
   */
  describe(addresses: readonly Address[]): string {
    return addresses
      .map((address) => {
        const key = formatAddress(address);
        const log = this.byAddress.get(key);
        if (log === undefined) return `${key} (not tried in this call)`;
        const parts = log.problems.map((p) => (p.count > 1 ? `${p.text} ×${p.count}` : p.text));
        if (log.more > 0) parts.push(`${log.more} more`);
        return `${key} (${parts.join('; ')})`;
      })
      .join(', ');
  }
}

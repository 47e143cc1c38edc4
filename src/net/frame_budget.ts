// The global budget of memory held for incomplete frames across every connection of the client
// port (issue 14). Each connection's frame decoder keeps the bytes of a frame that has not fully
// arrived; one connection may legitimately hold up to a frame's size (8 MiB), so without a bound
// on the sum, many connections that each start a large frame and never finish it take the
// node's memory. Each connection has an account here whose charge is what its decoder holds
// (bytes, plus a fixed cost per chunk, so that a stream of tiny chunks cannot hide behind a
// small byte count). When the sum exceeds the budget, the account charged the most is evicted:
// its owner answers with an error and closes, which releases the account at once.
//
// Invariants: usedBytes is the sum of the open accounts' charges; after enforce() returns,
// usedBytes <= budgetBytes; an evicted or released account is charged 0 and never again.
// Eviction picks the largest charge, so a client sending ordinary requests (whole frames, or a
// frame at a time) is never the one evicted while a connection holding more exists; the
// partial-frame timeout (client_port.ts) guarantees every charge is eventually released.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';

/** One connection's share of the budget. */
export class FrameBudgetAccount {
  /** Bytes charged now (0 once released). */
  chargedBytes = 0;
  open = true;

  constructor(
    private readonly budget: FrameBudget,
    /** Called when the budget evicts this account: the owner must close and release it. */
    readonly onEvict: () => void,
  ) {}

  /** Sets this account's charge; call enforce() on the budget afterwards. */
  charge(bytes: number): void {
    assert(bytes >= 0, 'a charge is never negative');
    if (!this.open) return;
    this.budget.adjust(bytes - this.chargedBytes);
    this.chargedBytes = bytes;
  }

  /** Gives back everything charged; the account stays closed. */
  release(): void {
    if (!this.open) return;
    this.charge(0);
    this.open = false;
    this.budget.forget(this);
  }
}

export class FrameBudget {
  private used = 0;
  private readonly accounts = new Set<FrameBudgetAccount>();
  private evictedCount = 0;

  constructor(readonly budgetBytes: number) {
    assert(Number.isSafeInteger(budgetBytes) && budgetBytes > 0, 'budget must be positive');
  }

  /** The sum of every open account's charge. */
  get usedBytes(): number {
    return this.used;
  }

  /** Accounts evicted since start. */
  get evictions(): number {
    return this.evictedCount;
  }

  get accountCount(): number {
    return this.accounts.size;
  }

  open(onEvict: () => void): FrameBudgetAccount {
    const account = new FrameBudgetAccount(this, onEvict);
    this.accounts.add(account);
    return account;
  }

  /**
   * Evicts the largest accounts until the budget holds again; returns how many were evicted.
   * Each eviction must release its account (asserted): that is what makes this loop end.
   */
  enforce(): number {
    let evicted = 0;
    while (this.used > this.budgetBytes) {
      const largest = this.largest();
      assert(largest !== null, 'a budget in excess has a charged account');
      largest.onEvict();
      assert(!largest.open, 'an evicted account is released by its owner');
      evicted += 1;
      this.evictedCount += 1;
    }
    assert(this.used <= this.budgetBytes, 'the budget holds after enforce');
    return evicted;
  }

  /** @internal Used by FrameBudgetAccount only. */
  adjust(deltaBytes: number): void {
    this.used += deltaBytes;
    assert(this.used >= 0, 'the budget never goes negative');
  }

  /** @internal Used by FrameBudgetAccount only. */
  forget(account: FrameBudgetAccount): void {
    this.accounts.delete(account);
  }

  /** The open account charged the most (a scan: it runs only when the budget is exceeded). */
  private largest(): FrameBudgetAccount | null {
    let best: FrameBudgetAccount | null = null;
    for (const account of this.accounts) {
      if (account.chargedBytes > 0 && (best === null || account.chargedBytes > best.chargedBytes)) {
        best = account;
      }
    }
    return best;
  }
}

/** What a decoder's buffered chunks cost the budget: their bytes and a fixed cost each. */
export function bufferedCostBytes(decoder: {
  readonly bufferedSizeBytes: number;
  readonly bufferedChunkCount: number;
}): number {
  return decoder.bufferedSizeBytes + decoder.bufferedChunkCount * constants.frameChunkOverheadBytes;
}

import { fail } from "../errors";
import type { QuotaName } from "../tasks/model";

/** What the namespace's request bucket answers a Worker that asks for tokens. */
export interface RequestGrant {
  /** Tokens handed out by this call: 0 when the bucket holds no whole token. */
  granted: number;
  /** The bucket's capacity, twice `requests_per_second` (SPEC §3). */
  limit: number;
  /** Whole tokens left in the bucket after this grant. */
  remaining: number;
  /** Milliseconds until the bucket holds a whole token again (0 when it holds one now). */
  nextTokenMs: number;
  /** Milliseconds until the bucket is full again. */
  fullMs: number;
}

/**
 * SPEC §3's per-namespace token bucket: `perSecond` tokens a second, at most twice that held.
 * It lives in memory only: a restarted object starts full, which a bucket that refills to its
 * capacity in two seconds would almost always be anyway, and no request pays a storage write.
 */
export class RequestBucket {
  private level: number | null = null;
  private updatedAt = 0;

  constructor(private readonly now: () => number) {}

  /** Takes up to `want` whole tokens, as many as the bucket holds. */
  take(want: number, perSecond: number): RequestGrant {
    const capacity = 2 * perSecond;
    const now = this.now();
    const elapsedMs = Math.max(0, now - this.updatedAt);
    const level = this.level === null ? capacity : Math.min(capacity, this.level + (elapsedMs * perSecond) / 1000);
    const granted = Math.max(0, Math.min(Math.floor(want), Math.floor(level)));
    const left = level - granted;
    this.level = left;
    this.updatedAt = now;
    return {
      granted,
      limit: capacity,
      remaining: Math.floor(left),
      nextTokenMs: left >= 1 ? 0 : Math.ceil(((1 - left) * 1000) / perSecond),
      fullMs: Math.ceil(((capacity - left) * 1000) / perSecond),
    };
  }
}

/**
 * The namespace's unfinished tasks, kept up to date so that a create need not count them: the
 * last count, plus the tasks created since, less those that finished since. Should it ever drift
 * (a transaction rolled back after its event), the tasks are counted again whenever the bound
 * would pass the quota, at most once a second while creates are refused (a count at a quota of
 * millions is not free, and a refused client may retry at once).
 */
export class UnfinishedTasks {
  private bound: number | null = null;
  private countedAt = -Infinity;

  constructor(
    private readonly count: () => number,
    private readonly now: () => number,
  ) {}

  /** Whether `adding` more tasks keep the namespace within `limit` unfinished tasks. */
  fits(adding: number, limit: number): boolean {
    if (this.bound === null || (this.bound + adding > limit && this.now() - this.countedAt >= RECOUNT_MS)) {
      this.bound = this.count();
      this.countedAt = this.now();
    }
    return this.bound + adding <= limit;
  }

  /** Records tasks just created. */
  added(n: number): void {
    if (this.bound !== null) this.bound += n;
  }

  /** Records a task that reached a terminal status. */
  finished(): void {
    if (this.bound !== null && this.bound > 0) this.bound--;
  }

  /** Forgets the count, so that the next create counts again (after a change of the quota). */
  reset(): void {
    this.bound = null;
  }
}

const RECOUNT_MS = 1000;

/** SPEC §4's answer to a create beyond a quota. */
export const quotaExceeded = (quota: QuotaName, limit: number, what: string) =>
  fail("conflict", `the namespace has reached its quota of ${limit} ${what} (settings.${quota})`, { quota, limit });

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
 * An upper bound on the namespace's unfinished tasks, so that a create need not count them.
 * Tasks become unfinished only by being created, so the last count plus the tasks created since
 * never falls short of the truth; the tasks are counted again only when that bound would pass
 * the quota.
 */
export class UnfinishedTasks {
  private bound: number | null = null;

  constructor(private readonly count: () => number) {}

  /** Whether `adding` more tasks keep the namespace within `limit` unfinished tasks. */
  fits(adding: number, limit: number): boolean {
    if (this.bound === null || this.bound + adding > limit) this.bound = this.count();
    return this.bound + adding <= limit;
  }

  /** Records tasks just created. */
  added(n: number): void {
    if (this.bound !== null) this.bound += n;
  }
}

/** SPEC §4's answer to a create beyond a quota. */
export const quotaExceeded = (quota: QuotaName, limit: number, what: string) =>
  fail("conflict", `the namespace has reached its quota of ${limit} ${what} (settings.${quota})`, { quota, limit });

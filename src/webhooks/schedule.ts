/**
 * SPEC §7's delivery schedule: attempts at 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each
 * wait jittered by ±20 %.
 */
export const RETRY_DELAYS_MS: readonly number[] = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
export const MAX_DELIVERY_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
export const JITTER = 0.2;
/** An endpoint whose every attempt has failed for this long is disabled. */
export const DISABLE_AFTER_MS = 5 * 86400_000;
export const DELIVERY_TIMEOUT_MS = 15_000;

/** The wait after `attemptsMade` failed attempts, or null once the schedule is exhausted. */
export function nextDelayMs(attemptsMade: number, random: () => number = Math.random): number | null {
  const base = RETRY_DELAYS_MS[attemptsMade - 1];
  if (base === undefined) return null;
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

/**
 * A Retry-After header (seconds or an HTTP date) as a wait in ms, kept within the schedule's
 * bounds: no sooner than its shortest wait, no later than its longest.
 */
export function retryAfterMs(header: string | null, now: number): number | null {
  if (header === null || header.trim() === "") return null;
  const trimmed = header.trim();
  let ms: number;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return null;
    ms = at - now;
  }
  const shortest = RETRY_DELAYS_MS[0] ?? 0;
  const longest = Math.max(...RETRY_DELAYS_MS);
  return Math.min(Math.max(ms, shortest), longest);
}

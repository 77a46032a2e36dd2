import type { Context } from "hono";
import { namespaceStub } from "../namespace/stub";
import { ApiError } from "../errors";
import type { RequestGrant } from "../namespace/contract";
import type { AppEnv } from "./env";

/**
 * Tokens a Worker isolate holds from its namespace's bucket are spent within this long or
 * dropped: a token taken long ago and spent now could join a refilled bucket in one burst.
 */
const LEASE_MS = 1000;
const MAX_LEASES = 10_000;
/**
 * A request that finds the lease empty while another request's refill is out looks again every
 * POLL_MS until the refill has landed. It polls because it cannot be woken: a promise of one
 * request cannot be resolved from another in the Workers runtime (RefcountedFulfiller: "Cannot
 * perform I/O on behalf of a different request"). A refill out longer than several times the last
 * one took (REFILL_SLOW_FACTOR, within REFILL_LOST_MIN_MS..REFILL_WAIT_MS) is taken for lost (its
 * request may have been cancelled, its continuation with it): the next request to look takes over
 * with a refill of its own. No request waits longer than REFILL_WAIT_MS in all: then it asks for
 * a token of its own.
 */
const POLL_MS = 2;
const REFILL_SLOW_FACTOR = 8;
const REFILL_LOST_MIN_MS = 250;
const REFILL_WAIT_MS = 1000;

/**
 * The tokens this isolate holds for one namespace. One refill at a time asks the NamespaceDO
 * for a grant; requests that find the lease empty meanwhile wait for it (issue 11: each of them
 * asking for a token of its own was most of the object's calls on a busy path). A grant is sized
 * to what the isolate spends: it doubles while grants run out before their lease ends, falls
 * back to what one lease actually used when some expire unused, and is never smaller than the
 * number of requests waiting for it. So a busy isolate pays about one round trip a lease and an
 * idle one wastes little. The limit stays exact: a request spends only a token the object granted.
 */
interface Lease {
  tokens: number;
  expiresAt: number;
  grantSize: number;
  /** Tokens spent since the last grant arrived: what one lease used, when some expire unused. */
  spent: number;
  /** The NamespaceDO's answer to the last refill, for the RateLimit headers. */
  last: RequestGrant | null;
  lastAt: number;
  /** No whole token exists in the bucket before this time (from the last refused refill). */
  refusedUntil: number;
  /** The refill out right now (its number, when it started), or null. */
  refill: { id: number; since: number } | null;
  refills: number;
  /** How long the last refill took. */
  refillMs: number;
  /**
   * Requests in spendRequestToken without a token yet (when each began to wait): the concurrency
   * a grant must serve. A cancelled request never runs its `finally`, so only those that began
   * within REFILL_WAIT_MS count (a live one refills alone after that): none stays counted for good.
   */
  hungry: Set<{ since: number }>;
}

const leases = new Map<string, Lease>();

function leaseOf(namespaceId: string): Lease {
  let lease = leases.get(namespaceId);
  if (!lease) {
    if (leases.size >= MAX_LEASES) leases.clear();
    lease = { tokens: 0, expiresAt: 0, grantSize: 1, spent: 0, last: null, lastAt: 0, refusedUntil: 0, refill: null, refills: 0, refillMs: 0, hungry: new Set() };
    leases.set(namespaceId, lease);
  }
  return lease;
}

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

function headers(lease: Lease, refused: boolean): Record<string, string> {
  const last = lease.last;
  if (!last) return {};
  const now = Date.now();
  const out: Record<string, string> = {
    "RateLimit-Limit": String(last.limit),
    "RateLimit-Remaining": String(refused ? 0 : last.remaining + lease.tokens),
    "RateLimit-Reset": String(seconds(last.fullMs - (now - lease.lastAt))),
  };
  if (refused) out["Retry-After"] = String(Math.max(1, seconds(lease.refusedUntil - now)));
  return out;
}

function refuse(lease: Lease): never {
  throw new ApiError("rate_limited", `the namespace is limited to ${(lease.last?.limit ?? 0) / 2} requests a second`, undefined, headers(lease, true));
}

/**
 * Spends one of the namespace's request tokens (SPEC §3) or throws 429 `rate_limited` before
 * anything is read or changed. Sets the RateLimit headers on the response either way.
 */
export async function spendRequestToken(c: Context<AppEnv>, namespaceId: string): Promise<void> {
  const lease = leaseOf(namespaceId);
  if (!takeHeld(lease)) {
    const waiting = { since: Date.now() };
    lease.hungry.add(waiting);
    try {
      if (!(await takeGranted(c, namespaceId, lease))) return;
    } finally {
      lease.hungry.delete(waiting);
    }
  }
  const granted = headers(lease, false);
  for (const name in granted) c.header(name, granted[name] as string);
}

function takeHeld(lease: Lease): boolean {
  if (lease.tokens <= 0 || Date.now() >= lease.expiresAt) return false;
  lease.tokens--;
  lease.spent++;
  return true;
}

/**
 * Takes a token once the lease holds one: waits for the refill out, if any, or refills. False
 * when the object could not be asked (the request goes unlimited); throws 429 when the bucket is empty.
 */
async function takeGranted(c: Context<AppEnv>, namespaceId: string, lease: Lease): Promise<boolean> {
  const since = Date.now();
  for (;;) {
    if (takeHeld(lease)) return true;
    const now = Date.now();
    if (now < lease.refusedUntil) refuse(lease);
    const out = lease.refill;
    if (!out || now - out.since >= lostAfterMs(lease)) return refill(c, namespaceId, lease, false);
    if (now - since >= REFILL_WAIT_MS) return refill(c, namespaceId, lease, true);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The requests waiting for a token now; those waiting past REFILL_WAIT_MS are gone (cancelled) and leave the set. */
function waitingNow(lease: Lease, now: number): number {
  for (const waiting of lease.hungry) if (now - waiting.since > REFILL_WAIT_MS) lease.hungry.delete(waiting);
  return lease.hungry.size;
}

/** How long a refill may be out before it is taken for lost. */
const lostAfterMs = (lease: Lease): number => Math.min(REFILL_WAIT_MS, Math.max(REFILL_LOST_MIN_MS, REFILL_SLOW_FACTOR * lease.refillMs));

/** The next grant's size: doubled after a lease ran out in time, what one lease used after one expired unused. */
function nextGrantSize(lease: Lease, now: number): number {
  const ceiling = lease.last ? Math.max(1, Math.floor(lease.last.limit / 20)) : 1;
  const expiredUnused = lease.tokens > 0 && now >= lease.expiresAt;
  return Math.min(ceiling, expiredUnused ? Math.max(1, lease.spent) : lease.grantSize * 2);
}

/**
 * Asks the NamespaceDO for a grant for this request and the ones waiting, then takes a token of
 * it. A request that gave up waiting for a refill still out asks for its own token only, so that
 * a slow object cannot make many requests each take a grant sized for all.
 */
async function refill(c: Context<AppEnv>, namespaceId: string, lease: Lease, besideAnother: boolean): Promise<boolean> {
  const now = Date.now();
  // Requests waiting now would each take a token of their own: one grant serves them all.
  const want = besideAnother ? 1 : Math.max((lease.grantSize = nextGrantSize(lease, now)), waitingNow(lease, now));
  const mine = { id: ++lease.refills, since: now };
  lease.refill = mine;
  try {
    let grant: RequestGrant;
    try {
      grant = await namespaceStub(c.env, namespaceId).takeRequestTokens(want);
    } catch (err) {
      // The limit protects the service; it is not worth failing a request the namespace may serve.
      console.error(`request tokens of ${namespaceId} could not be taken; the request goes unlimited`, err);
      return false;
    }
    const at = Date.now();
    lease.refillMs = at - now;
    lease.last = grant;
    lease.lastAt = at;
    // Tokens of an expired lease are dropped; an unexpired one's join the grant.
    const held = (at < lease.expiresAt ? lease.tokens : 0) + grant.granted;
    if (held === 0) {
      lease.refusedUntil = now + grant.nextTokenMs;
      refuse(lease);
    }
    lease.tokens = held - 1;
    if (grant.granted > 0) {
      lease.expiresAt = at + LEASE_MS;
      lease.refusedUntil = 0;
      lease.spent = 0;
    }
    lease.spent++;
    return true;
  } finally {
    if (lease.refill?.id === mine.id) lease.refill = null;
  }
}

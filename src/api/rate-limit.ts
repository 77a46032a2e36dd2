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
 * The tokens this isolate holds for one namespace. Each refill asks the NamespaceDO for a grant
 * that doubles while grants are used up in time and falls back to one token when some expire
 * unused, so a busy isolate pays one round trip for many requests and an idle one wastes little.
 * Requests share only these numbers, never a pending refill: a promise of one request's I/O
 * cannot be awaited safely by another in the Workers runtime.
 */
interface Lease {
  tokens: number;
  expiresAt: number;
  grantSize: number;
  /** The NamespaceDO's answer to the last refill, for the RateLimit headers. */
  last: RequestGrant | null;
  lastAt: number;
  /** No whole token exists in the bucket before this time (from the last refused refill). */
  refusedUntil: number;
  /** Refills out right now. */
  refilling: number;
}

const leases = new Map<string, Lease>();

function leaseOf(namespaceId: string): Lease {
  let lease = leases.get(namespaceId);
  if (!lease) {
    if (leases.size >= MAX_LEASES) leases.clear();
    lease = { tokens: 0, expiresAt: 0, grantSize: 1, last: null, lastAt: 0, refusedUntil: 0, refilling: 0 };
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
  const now = Date.now();
  if (lease.tokens > 0 && now < lease.expiresAt) {
    lease.tokens--;
  } else {
    if (now < lease.refusedUntil) refuse(lease);
    const ceiling = lease.last ? Math.max(1, Math.floor(lease.last.limit / 20)) : 1;
    // Requests that find the lease empty while a refill is out ask for their own token only, so
    // that a burst of them cannot take the whole bucket into one isolate.
    const want = lease.refilling > 0 ? 1 : (lease.grantSize = lease.tokens > 0 ? 1 : Math.min(ceiling, lease.grantSize * 2));
    let grant: RequestGrant;
    lease.refilling++;
    try {
      grant = await namespaceStub(c.env, namespaceId).takeRequestTokens(want);
    } catch (err) {
      // The limit protects the service; it is not worth failing a request the namespace may serve.
      console.error(`request tokens of ${namespaceId} could not be taken; the request goes unlimited`, err);
      return;
    } finally {
      lease.refilling--;
    }
    const at = Date.now();
    lease.last = grant;
    lease.lastAt = at;
    // Concurrent refills add up; tokens of an expired lease are dropped.
    const held = (at < lease.expiresAt ? lease.tokens : 0) + grant.granted;
    if (held === 0) {
      lease.refusedUntil = now + grant.nextTokenMs;
      refuse(lease);
    }
    // A refill that found the bucket empty may still spend what a concurrent one brought.
    lease.tokens = held - 1;
    if (grant.granted > 0) {
      lease.expiresAt = at + LEASE_MS;
      lease.refusedUntil = 0;
    }
  }
  for (const [name, value] of Object.entries(headers(lease, false))) c.header(name, value);
}

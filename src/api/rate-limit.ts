import type { Context } from "hono";
import { namespaceStub } from "../consumer/stub";
import { ApiError } from "../errors";
import type { RequestGrant } from "../namespace/limits";
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
  refill: Promise<void> | null;
}

const leases = new Map<string, Lease>();

function leaseOf(namespaceId: string): Lease {
  let lease = leases.get(namespaceId);
  if (!lease) {
    if (leases.size >= MAX_LEASES) leases.clear();
    lease = { tokens: 0, expiresAt: 0, grantSize: 1, last: null, lastAt: 0, refusedUntil: 0, refill: null };
    leases.set(namespaceId, lease);
  }
  return lease;
}

async function refill(env: Env, namespaceId: string, lease: Lease): Promise<void> {
  const now = Date.now();
  const unused = lease.tokens > 0;
  const ceiling = lease.last ? Math.max(1, Math.floor(lease.last.limit / 20)) : 1;
  lease.grantSize = unused ? 1 : Math.min(ceiling, lease.grantSize * 2);
  const grant = await namespaceStub(env, namespaceId).takeRequestTokens(lease.grantSize);
  const at = Date.now();
  lease.tokens = grant.granted;
  lease.expiresAt = at + LEASE_MS;
  lease.last = grant;
  lease.lastAt = at;
  lease.refusedUntil = grant.granted === 0 ? now + grant.nextTokenMs : 0;
}

const seconds = (ms: number): number => Math.max(0, Math.ceil(ms / 1000));

function headers(lease: Lease, refused: boolean): Record<string, string> {
  const last = lease.last;
  if (!last) return {};
  const elapsed = Date.now() - lease.lastAt;
  const out: Record<string, string> = {
    "RateLimit-Limit": String(last.limit),
    "RateLimit-Remaining": String(refused ? 0 : last.remaining + lease.tokens),
    "RateLimit-Reset": String(seconds(last.fullMs - elapsed)),
  };
  if (refused) out["Retry-After"] = String(Math.max(1, seconds(lease.refusedUntil - Date.now())));
  return out;
}

/**
 * Spends one of the namespace's request tokens (SPEC §3) or throws 429 `rate_limited` before
 * anything is read or changed. Sets the RateLimit headers on the response either way.
 */
export async function spendRequestToken(c: Context<AppEnv>, namespaceId: string): Promise<void> {
  const lease = leaseOf(namespaceId);
  // Every round either returns or waits for a refill that found tokens, which some request spends.
  for (;;) {
    const now = Date.now();
    if (lease.tokens > 0 && now < lease.expiresAt) {
      lease.tokens--;
      for (const [name, value] of Object.entries(headers(lease, false))) c.header(name, value);
      return;
    }
    if (now < lease.refusedUntil) {
      throw new ApiError("rate_limited", `the namespace is limited to ${(lease.last?.limit ?? 0) / 2} requests a second`, undefined, headers(lease, true));
    }
    if (!lease.refill) {
      lease.refill = refill(c.env, namespaceId, lease).finally(() => {
        lease.refill = null;
      });
    }
    try {
      await lease.refill;
    } catch (err) {
      // The limit protects the service; it is not worth failing a request the namespace may serve.
      console.error(`request tokens of ${namespaceId} could not be taken; the request goes unlimited`, err);
      return;
    }
    if (lease.last?.granted === 0) {
      throw new ApiError("rate_limited", `the namespace is limited to ${lease.last.limit / 2} requests a second`, undefined, headers(lease, true));
    }
  }
}

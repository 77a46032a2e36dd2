import type { Context, MiddlewareHandler } from "hono";
import { namespaceStub, type NamespaceStub } from "../namespace/stub";
import { authenticateKey, type KeyPrincipal } from "../db/keys";
import { ApiError } from "../errors";
import { secretsEqual } from "../ids";
import type { AppEnv } from "./env";
import { spendRequestToken } from "./rate-limit";
import { config } from "../config";

/** The bearer token of the request, or null. */
export function bearerToken(c: Context): string | null {
  const header = c.req.header("Authorization");
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (match) return match[1] ?? null;
  // A browser cannot set headers on a WebSocket: it offers the key as the subprotocol `bearer.<key>`.
  if (c.req.header("Upgrade")?.toLowerCase() === "websocket") {
    const offered = c.req.header("Sec-WebSocket-Protocol")?.split(",").map((p) => p.trim()) ?? [];
    const bearer = offered.find((p) => p.startsWith("bearer."));
    if (bearer) return bearer.slice("bearer.".length);
  }
  return null;
}

/** D1 lookups of credentials (API keys, callback namespaces) made by this isolate: tests prove that a refused request makes none. */
export const credentialLookups = { count: 0 };

/** A gate's credential check (src/api/gate.ts), from headers alone: throws SPEC §3's error or lets the request on. */
export type CredentialCheck = (c: Context<AppEnv>) => Promise<void>;

/**
 * The API-key check of a namespace's routes, run before anything reads the request body: the
 * key decides the namespace, and the request spends one of its request tokens (SPEC §3).
 */
export const requireNamespaceKey: CredentialCheck = async (c) => {
  const principal = await requireApiKey(c);
  c.set("principal", principal);
  await spendRequestToken(c, principal.namespace_id);
};

/** The check of the admin API: ADMIN_TOKEN. */
export const requireAdminToken: CredentialCheck = (c) => requireAdmin(c);

/** requireNamespaceKey as middleware, for routes outside a gated sub-app (SPEC §11's /mixpeek). */
export const apiKeyAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  await requireNamespaceKey(c);
  return next();
};

/**
 * Requests with unknown credentials are limited per client address (SPEC §3) before they reach
 * D1: this runs just before every lookup a cache cannot answer. A request without
 * CF-Connecting-IP did not come through Cloudflare's edge (a service binding, the test harness).
 */
export async function limitUnknownCredentials(c: Context<AppEnv>): Promise<void> {
  const address = c.req.header("CF-Connecting-IP");
  if (address && !(await c.env.AUTH_LIMITER.limit({ key: address })).success) throw addressLimited();
  credentialLookups.count++;
}

export const addressLimited = () =>
  new ApiError("rate_limited", "too many requests with unknown credentials from this address", undefined, {
    "Retry-After": String(ADDRESS_PERIOD_SECONDS),
    "RateLimit-Remaining": "0",
    "RateLimit-Reset": String(ADDRESS_PERIOD_SECONDS),
  });

/** The period of the AUTH_LIMITER binding in wrangler.toml. */
export const ADDRESS_PERIOD_SECONDS = 10;

async function requireAdmin(c: Context<AppEnv>): Promise<void> {
  const token = bearerToken(c);
  const expected = config(c.env).adminToken;
  if (!token) throw new ApiError("unauthorized", "missing bearer token");
  if (!expected || !(await secretsEqual(token, expected))) throw new ApiError("unauthorized", "invalid admin token");
}

async function requireApiKey(c: Context<AppEnv>): Promise<KeyPrincipal> {
  const token = bearerToken(c);
  if (!token) throw new ApiError("unauthorized", "missing bearer token: send Authorization: Bearer sk_...");
  const principal =
    token.startsWith("sk_") && token.length <= 128 ? await authenticateKey(c.env.DB, token, Date.now(), () => limitUnknownCredentials(c)) : null;
  if (!principal) throw new ApiError("unauthorized", "invalid or revoked API key");
  const claimed = c.req.header("X-Namespace");
  if (claimed !== undefined && claimed !== principal.namespace_id && claimed !== principal.namespace_name) {
    throw new ApiError("forbidden", "X-Namespace does not name the namespace of this API key");
  }
  return principal;
}

/** The NamespaceDO of the request's namespace. */
export const namespaceOf = (c: Context<AppEnv>): NamespaceStub => namespaceStub(c.env, c.get("principal").namespace_id);

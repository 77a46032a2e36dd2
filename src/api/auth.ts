import type { Context, MiddlewareHandler } from "hono";
import { namespaceStub, type NamespaceStub } from "../consumer/stub";
import { authenticateKey, type KeyPrincipal } from "../db/keys";
import { ApiError } from "../errors";
import { secretsEqual } from "../ids";
import type { AppEnv } from "./env";

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

const CALLBACK_PATH = /^\/v1\/tasks\/[^/]+\/callback(\/|$)/;

/**
 * One gate for every /v1 route: the admin API takes ADMIN_TOKEN, processor callbacks carry
 * their attempt's token (checked by the Durable Object), everything else takes an API key.
 */
export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const path = c.req.path;
  if (CALLBACK_PATH.test(path)) return next();
  if (path === "/v1/namespaces" || path.startsWith("/v1/namespaces/")) {
    await requireAdmin(c);
    return next();
  }
  c.set("principal", await requireApiKey(c));
  return next();
};

async function requireAdmin(c: Context<AppEnv>): Promise<void> {
  const token = bearerToken(c);
  const expected = c.env.ADMIN_TOKEN;
  if (!token) throw new ApiError("unauthorized", "missing bearer token");
  if (!expected || !(await secretsEqual(token, expected))) throw new ApiError("unauthorized", "invalid admin token");
}

async function requireApiKey(c: Context<AppEnv>): Promise<KeyPrincipal> {
  const token = bearerToken(c);
  if (!token) throw new ApiError("unauthorized", "missing bearer token: send Authorization: Bearer sk_...");
  const principal = token.startsWith("sk_") && token.length <= 128 ? await authenticateKey(c.env.DB, token) : null;
  if (!principal) throw new ApiError("unauthorized", "invalid or revoked API key");
  const claimed = c.req.header("X-Namespace");
  if (claimed !== undefined && claimed !== principal.namespace_id && claimed !== principal.namespace_name) {
    throw new ApiError("forbidden", "X-Namespace does not name the namespace of this API key");
  }
  return principal;
}

/** The NamespaceDO of the request's namespace. */
export const namespaceOf = (c: Context<AppEnv>): NamespaceStub => namespaceStub(c.env, c.get("principal").namespace_id);

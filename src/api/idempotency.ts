import type { MiddlewareHandler } from "hono";
import { claimKey, completeKey, openResponse, releaseKey, sealResponse } from "../db/idempotency";
import { ApiError } from "../errors";
import { sha256Hex } from "../ids";
import type { AppEnv } from "./env";
import { config } from "../config";

const MAX_KEY_LENGTH = 255;

/**
 * SPEC §3's Idempotency-Key for every creating POST: the same key with the same request within
 * 24 h replays the first response; with a different request, 422; while the first still runs,
 * 409. Keys are scoped to the namespace (the admin API has a scope of its own). The stored
 * response is sealed with a key D1 does not hold (see sealResponse): it may carry a secret.
 */
export const idempotent: MiddlewareHandler<AppEnv> = async (c, next) => {
  const key = c.req.header("Idempotency-Key");
  if (key === undefined || c.req.method !== "POST") return next();
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new ApiError("validation_error", `Idempotency-Key must be 1–${MAX_KEY_LENGTH} characters`, { header: "Idempotency-Key" });
  }
  const scope = c.get("principal")?.namespace_id ?? "admin";
  const url = new URL(c.req.url);
  const requestHash = await sha256Hex(`${c.req.method} ${url.pathname}${url.search}\n${await c.req.text()}`);
  const claim = await claimKey(c.env.DB, scope, key, requestHash);
  switch (claim.kind) {
    case "mismatch":
      throw new ApiError("validation_error", "this Idempotency-Key was used with a different request", { header: "Idempotency-Key" });
    case "in_flight":
      throw new ApiError("conflict", "a request with this Idempotency-Key is still in progress; retry shortly", { header: "Idempotency-Key" });
    case "replay": {
      const body = await openResponse(serverSecret(c.env), scope, key, claim.status, claim.body);
      if (body === null) {
        // Running the request again would create a second resource; say what to do instead.
        throw new ApiError(
          "validation_error",
          "the first response to this Idempotency-Key can no longer be replayed (the server's key changed); check whether the first request took effect, then use a new Idempotency-Key",
          { header: "Idempotency-Key" },
        );
      }
      return new Response(body, {
        status: claim.status,
        headers: { "content-type": "application/json", "idempotent-replayed": "true" },
      });
    }
    case "owned":
      break;
  }
  c.set("idempotency", { key, requestHash });
  try {
    await next();
  } catch (err) {
    await releaseKey(c.env.DB, scope, key);
    throw err;
  }
  // Hono turns thrown errors into responses before this point; a 5xx frees the key for a retry.
  if (c.res.status >= 500) await releaseKey(c.env.DB, scope, key);
  else {
    const sealed = await sealResponse(serverSecret(c.env), scope, key, c.res.status, await c.res.clone().text());
    try {
      await completeKey(c.env.DB, scope, key, c.res.status, sealed);
    } catch (err) {
      // The request took effect; a response D1 cannot keep (over its 2 MB value limit, say) must
      // not turn it into a 500. The key is freed instead: a retry runs again, and the creates
      // that can be that large (task batches) are keyed in their Durable Object as well.
      console.error("an idempotent response could not be stored; its key is freed", err);
      await releaseKey(c.env.DB, scope, key);
    }
  }
};

/**
 * The secret stored responses are sealed with: ADMIN_TOKEN, the one secret every deployment
 * has (a Worker secret, never in D1). Rotating it makes the last 24 h of responses
 * unreplayable, which a replay reports as such.
 */
const serverSecret = (env: Env): string => config(env).adminToken ?? "";

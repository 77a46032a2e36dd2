import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "../errors";
import { LIMITS } from "../tasks/model";
import { adminAuth, apiKeyAuth } from "./auth";
import { callbackAuth } from "./callback-auth";
import { type AppEnv, newApp } from "./env";
import { emptyJsonIsEmptyObject } from "./json-body";

/** A request with a body must send JSON: anything else would be validated as an empty object. */
const requireJson: MiddlewareHandler = async (c, next) => {
  const method = c.req.method;
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    const type = c.req.header("Content-Type");
    const length = c.req.header("Content-Length");
    const hasBody = (length !== undefined && length !== "0") || c.req.header("Transfer-Encoding") !== undefined;
    if (hasBody && !(type && /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type))) {
      throw new ApiError("invalid_json", "the request body must be JSON, sent with Content-Type: application/json");
    }
  }
  await next();
};

/** Refuses a body over `maxSize` bytes with 413, counting as it streams (SPEC §5 Limits). */
export const bodyUpTo = (maxSize: number): MiddlewareHandler =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError("payload_too_large", `request body exceeds ${maxSize} bytes`);
    },
  });

/**
 * What runs before every route of a sub-app: its credentials first (headers only, so a request
 * without them is answered before its body is read, SPEC §4), then the body's size and type.
 */
const gate = (auth: MiddlewareHandler<AppEnv>, maxBodyBytes: number): MiddlewareHandler<AppEnv>[] => [
  auth,
  bodyUpTo(maxBodyBytes),
  requireJson,
  emptyJsonIsEmptyObject,
];

/** A sub-app of a namespace's routes: an API key, bodies up to 1 MiB unless said otherwise. */
export const apiKeyApp = (maxBodyBytes: number = LIMITS.bodyBytes) => newApp(gate(apiKeyAuth, maxBodyBytes));

/** A sub-app of the admin API: ADMIN_TOKEN. */
export const adminApp = () => newApp(gate(adminAuth, LIMITS.bodyBytes));

/** A sub-app of a processor's callbacks: the attempt's token. */
export const callbackApp = () => newApp(gate(callbackAuth, LIMITS.bodyBytes));

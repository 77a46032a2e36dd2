import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "../errors";
import { LIMITS } from "../tasks/model";
import { type CredentialCheck, requireAdminToken, requireNamespaceKey } from "./auth";
import { requireCallbackToken } from "./callback-auth";
import { type AppEnv, newApp } from "./env";
import { isJsonType, readEmptyJsonAsEmptyObject } from "./json-body";

const tooLarge = (maxSize: number) => new ApiError("payload_too_large", `request body exceeds ${maxSize} bytes`);

/** Refuses a body over `maxSize` bytes with 413, counting as it streams (SPEC §5 Limits). */
export const bodyUpTo = (maxSize: number): MiddlewareHandler =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge(maxSize);
    },
  });

const nothingNext = async (): Promise<void> => {};

const notJson = () => new ApiError("invalid_json", "the request body must be JSON, sent with Content-Type: application/json");

/**
 * What runs before every route of a sub-app, as one middleware: its credentials first (headers
 * only, so a request without them is answered before its body is read, SPEC §4), then the
 * body's size and type. The request's headers are read once here for both (issue 11: every
 * request passes this gate).
 */
const gate = (check: CredentialCheck, maxBodyBytes: number): MiddlewareHandler<AppEnv> => {
  const countingLimit = bodyUpTo(maxBodyBytes);
  return async (c, next) => {
    await check(c);
    // bodyLimit checks a stated length, and counts a body of unstated length as it streams.
    if (c.req.raw.body) await countingLimit(c, nothingNext);
    const headers = c.req.raw.headers;
    const length = headers.get("Content-Length");
    const chunked = headers.has("Transfer-Encoding");
    // A request with a body must send JSON: anything else would be validated as an empty object.
    const json = isJsonType(headers.get("Content-Type"));
    const method = c.req.method;
    if (!json && (method === "POST" || method === "PUT" || method === "PATCH") && ((length !== null && length !== "0") || chunked)) throw notJson();
    if (json) readEmptyJsonAsEmptyObject(c);
    return next();
  };
};

/** A sub-app of a namespace's routes: an API key, bodies up to 1 MiB unless said otherwise. */
export const apiKeyApp = (maxBodyBytes: number = LIMITS.bodyBytes) => newApp([gate(requireNamespaceKey, maxBodyBytes)]);

/** A sub-app of the admin API: ADMIN_TOKEN. */
export const adminApp = () => newApp([gate(requireAdminToken, LIMITS.bodyBytes)]);

/** A sub-app of a processor's callbacks: the attempt's token. */
export const callbackApp = () => newApp([gate(requireCallbackToken, LIMITS.bodyBytes)]);

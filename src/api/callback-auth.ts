import type { Buffer } from "node:buffer";
import type { Context } from "hono";
import { namespaceStub } from "../namespace/stub";
import { namespaceExists } from "../db/namespaces";
import { ApiError } from "../errors";
import { sha256Hex } from "../ids";
import { callbackKeyBytes, type CallbackTokenShape, parseCallbackToken, verifyCallbackToken } from "../tasks/callback-token";
import { ADDRESS_PERIOD_SECONDS, addressLimited, bearerToken, type CredentialCheck, limitUnknownCredentials } from "./auth";
import type { AppEnv } from "./env";
import { spendRequestToken } from "./rate-limit";

/**
 * The gate of a processor's callbacks: the attempt's token, which names its namespace and is
 * checked before the body is read; the callback spends one of the namespace's request tokens.
 */
export const requireCallbackToken: CredentialCheck = async (c) => {
  const callback = await checkedCallback(c);
  c.set("callback", callback);
  await spendRequestToken(c, callback.namespaceId);
};

/** Callback keys of the namespaces this isolate has checked tokens of; keys never change. */
const callbackKeys = new Map<string, Buffer>();
/** Unsigned tokens (by hash) the namespace's object has vouched for, until when. */
const verifiedUnsigned = new Map<string, number>();
/** Addresses refused for guessing callback tokens, until when. */
const guessingAddresses = new Map<string, number>();
const UNSIGNED_CACHE_MS = 60_000;
const CACHE_ENTRIES = 10_000;

const remember = <V>(map: Map<string, V>, key: string, value: V) => {
  if (map.size >= CACHE_ENTRIES) map.clear();
  map.set(key, value);
};

/**
 * A processor callback's token, once it checks out, and its namespace. A signed token is checked here
 * against its namespace's key, which this isolate fetches once per namespace: a callback costs
 * the object no question before its report. A token naming an unknown namespace costs a D1
 * lookup, limited per address as for API keys. A token that fails counts against its address,
 * and an address beyond the limit is refused before its next guess is looked at.
 */
async function checkedCallback(c: Context<AppEnv>): Promise<{ token: string; namespaceId: string }> {
  const token = bearerToken(c);
  if (!token) throw new ApiError("unauthorized", "missing callback token");
  const shape = parseCallbackToken(token);
  const taskId = /^\/v1\/tasks\/([^/]+)\//.exec(c.req.path)?.[1];
  if (!shape || !taskId) throw new ApiError("unauthorized", "invalid callback token");
  const address = c.req.header("CF-Connecting-IP");
  const now = Date.now();
  if (address && (guessingAddresses.get(address) ?? 0) > now) throw addressLimited();
  const namespaceId = shape.namespaceId;
  const valid = shape.signed ? verifyCallbackToken(await keyOf(c, namespaceId), shape, taskId) : await vouchedFor(c, shape, token, taskId, now);
  if (!valid) {
    if (address && !(await c.env.AUTH_LIMITER.limit({ key: address })).success) {
      remember(guessingAddresses, address, now + ADDRESS_PERIOD_SECONDS * 1000);
      throw addressLimited();
    }
    throw new ApiError("unauthorized", "invalid callback token");
  }
  return { token, namespaceId };
}

/** The callback key of a namespace that exists, from this isolate's cache or, once, from its object. */
async function keyOf(c: Context<AppEnv>, namespaceId: string): Promise<Buffer> {
  const held = callbackKeys.get(namespaceId);
  if (held) return held;
  await knownNamespace(c, namespaceId);
  const key = callbackKeyBytes(await namespaceStub(c.env, namespaceId).callbackKey());
  remember(callbackKeys, namespaceId, key);
  return key;
}

async function knownNamespace(c: Context<AppEnv>, namespaceId: string): Promise<void> {
  await limitUnknownCredentials(c);
  if (!(await namespaceExists(c.env.DB, namespaceId))) throw new ApiError("unauthorized", "invalid callback token");
}

/**
 * Whether the object vouches for a token of the unsigned format tokens had before they were
 * signed (attempts in flight across the deploy that brought signing): asked once per token and isolate.
 */
async function vouchedFor(c: Context<AppEnv>, shape: CallbackTokenShape, token: string, taskId: string, now: number): Promise<boolean> {
  const namespaceId = shape.namespaceId;
  if (!callbackKeys.has(namespaceId)) await keyOf(c, namespaceId);
  const key = `${taskId} ${await sha256Hex(token)}`;
  if ((verifiedUnsigned.get(key) ?? 0) > now) return true;
  if (!(await namespaceStub(c.env, namespaceId).isCallbackToken(taskId, token))) return false;
  remember(verifiedUnsigned, key, now + UNSIGNED_CACHE_MS);
  return true;
}

import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { base64url, randomBytes } from "../ids";

/**
 * A processor callback's token (SPEC §6) vouches for itself: `<namespace_id>.<nonce>.<mac>`,
 * where the MAC is an HMAC-SHA256, under the namespace's own callback key, of the namespace, the
 * task the token was minted for and the nonce. The Worker checks it before it reads a callback's
 * body without asking the namespace's object (issue 11: that question was one Durable Object
 * call per callback); the object still fences every report by the token's hash, so a token of an
 * attempt that has ended, or of a slice that yielded, still changes nothing.
 *
 * Tokens minted before this format (`<namespace_id>.<43 characters>`) carry no MAC: the Worker
 * asks the object about those as it always did, so attempts in flight across a deploy still report.
 */
const SIGNED = /^(ns_[a-z0-9]{20})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
const UNSIGNED = /^(ns_[a-z0-9]{20})\.[A-Za-z0-9_-]{43}$/;

export type CallbackTokenShape =
  | { signed: true; namespaceId: string; nonce: string; mac: string }
  | { signed: false; namespaceId: string };

/** What a token claims to be (nothing verified yet); null when it is no callback token at all. */
export function parseCallbackToken(token: string): CallbackTokenShape | null {
  const signed = SIGNED.exec(token);
  if (signed) return { signed: true, namespaceId: signed[1] as string, nonce: signed[2] as string, mac: signed[3] as string };
  const unsigned = UNSIGNED.exec(token);
  return unsigned ? { signed: false, namespaceId: unsigned[1] as string } : null;
}

/** A new namespace callback key: 32 random bytes, base64url. */
export const newCallbackKey = (): string => base64url(randomBytes(32));

/** A key as createHmac takes it, decoded once per holder. */
export const callbackKeyBytes = (key: string): Buffer => Buffer.from(key, "base64url");

const macOf = (key: Buffer, namespaceId: string, taskId: string, nonce: string): Buffer =>
  createHmac("sha256", key).update(`${namespaceId}.${taskId}.${nonce}`).digest();

/** A new token for an attempt (or slice) of `taskId`: a fresh nonce, so every one is new. */
export function mintCallbackToken(key: Buffer, namespaceId: string, taskId: string): string {
  const nonce = base64url(randomBytes(16));
  return `${namespaceId}.${nonce}.${macOf(key, namespaceId, taskId, nonce).toString("base64url")}`;
}

const UTF8 = new TextEncoder();
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * A namespace's key as the holder that checks tokens keeps it (the Worker's callback gate),
 * imported once: crypto.subtle checks a MAC in native code, where node:crypto's createHmac
 * builds a stream object per token, which showed in the Worker's CPU profile (issue 11).
 */
export const callbackVerifyKey = (key: string): Promise<CryptoKey> =>
  crypto.subtle.importKey("raw", callbackKeyBytes(key), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);

/**
 * Whether a signed token was minted under `key` for `taskId` of its namespace. crypto.subtle
 * compares the MAC in constant time. Only the one spelling of the MAC passes, as only that one
 * was hashed into the attempt's row: 43 characters carry 258 bits, and the last one's two spare
 * bits must be zero (which says nothing of the expected MAC, only of the text given).
 */
export async function verifyCallbackToken(key: CryptoKey, token: Extract<CallbackTokenShape, { signed: true }>, taskId: string): Promise<boolean> {
  if ((B64URL.indexOf(token.mac.charAt(42)) & 3) !== 0) return false;
  const mac = Buffer.from(token.mac, "base64url");
  if (mac.length !== 32) return false;
  return crypto.subtle.verify("HMAC", key, mac, UTF8.encode(`${token.namespaceId}.${taskId}.${token.nonce}`));
}

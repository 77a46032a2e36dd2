import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
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

/**
 * Whether a signed token was minted under `key` for `taskId` of its namespace. The MAC is compared
 * as its text, in constant time: only the one encoding of it passes, as only that one was hashed
 * into the attempt's row.
 */
export function verifyCallbackToken(key: Buffer, token: Extract<CallbackTokenShape, { signed: true }>, taskId: string): boolean {
  // node:crypto's compare, not ids.ts's constantTimeEqual (crypto.subtle.timingSafeEqual is
  // Workers-only): this module runs in Node too (the unit tests).
  const expected = Buffer.from(macOf(key, token.namespaceId, taskId, token.nonce).toString("base64url"));
  const given = Buffer.from(token.mac);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

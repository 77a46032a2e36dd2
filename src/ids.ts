const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

export type IdPrefix =
  | "ns" | "key" | "tsk" | "evt" | "wh" | "dlv" | "bkt" | "obj" | "col" | "doc" | "tax" | "mdl" | "msg";

/**
 * Random bytes drawn a page at a time and each used once: a task makes several ids (its own, an
 * event's at each change), and a native call with a new array for each was a visible share of
 * the object's thread. Filled at first use, inside a request (the runtime refuses random values
 * at global scope).
 */
const POOL = new Uint8Array(4096);
let poolAt = POOL.length;

/** `n` base-36 characters, uniform: a byte of 252 or more is drawn again (rejection sampling). */
function randomChars(n: number): string {
  let out = "";
  while (out.length < n) {
    if (poolAt === POOL.length) {
      crypto.getRandomValues(POOL);
      poolAt = 0;
    }
    const byte = POOL[poolAt++]!;
    if (byte < 252) out += ALPHABET[byte % 36];
  }
  return out;
}

/**
 * A new opaque id: the prefix, then 20 random base-36 characters (≈103 bits, above SPEC §3's
 * 96-bit floor).
 */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomChars(20)}`;
}

/**
 * A new opaque id whose first 9 characters are `at` (ms, base 36), then 20 random ones as in
 * newId: ids made later sort later, so an index on them grows at its end instead of touching a
 * random page of a large index with every insert (events are many and kept for days).
 */
export function newOrderedId(prefix: IdPrefix, at: number): string {
  const time = Math.max(0, Math.floor(at)).toString(36).padStart(9, "0");
  return `${prefix}_${time}${randomChars(20)}`;
}

/** base64url without padding. */
export function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** A secret API key: `sk_` and 32 random bytes. */
export const newApiKey = (): string => `sk_${base64url(randomBytes(32))}`;

/** A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes. */
export const newSigningSecret = (): string => `whsec_${base64(randomBytes(32))}`;

/** Two hex digits of every byte: every API request hashes its key, so the digest's hex is built by lookup. */
const HEX_BYTES = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
const UTF8 = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", UTF8.encode(text)));
  let hex = "";
  for (const b of digest) hex += HEX_BYTES[b];
  return hex;
}

/** Compares two strings in time that depends only on their length (hash them first when lengths may differ). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  if (ea.byteLength !== eb.byteLength) return false;
  return crypto.subtle.timingSafeEqual(ea, eb);
}

/** Compares two secrets of any length in constant time by comparing their digests. */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  return constantTimeEqual(await sha256Hex(a), await sha256Hex(b));
}

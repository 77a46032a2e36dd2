/**
 * Standard Webhooks v1 signatures: HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed with the
 * base64 part of a `whsec_` secret. Any Standard Webhooks library verifies these headers.
 */
export interface SignedHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

const encoder = new TextEncoder();

/** Imported keys this isolate keeps at most; past it the cache starts again. */
const MAX_KEYS = 1024;

/**
 * The imported key of each secret, by the secret itself: every dispatch and delivery to one
 * endpoint is signed with the same secret, and importing it cost as much as signing (issue 11).
 * A rotated secret is another string, so it gets its own key; the old one is never used again.
 * Keys, not promises of keys, are kept: a promise made in one request and awaited in another
 * would cross request contexts.
 */
const keys = new Map<string, CryptoKey>();

function secretKey(secret: string): Uint8Array {
  const base64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

async function importKey(secret: string): Promise<CryptoKey> {
  const key = await crypto.subtle.importKey("raw", secretKey(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  if (keys.size >= MAX_KEYS) keys.clear();
  keys.set(secret, key);
  return key;
}

export async function sign(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", keys.get(secret) ?? (await importKey(secret)), encoder.encode(`${id}.${timestampSeconds}.${body}`)));
  return `v1,${btoa(String.fromCharCode(...mac))}`;
}

/** The three headers of a signed request; the signature header lists one signature per secret. */
export async function signedHeaders(secrets: string[], id: string, body: string, now = Date.now()): Promise<SignedHeaders> {
  const timestamp = Math.floor(now / 1000);
  const signatures = await Promise.all(secrets.map((s) => sign(s, id, timestamp, body)));
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signatures.join(" ") };
}

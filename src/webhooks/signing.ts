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

function secretKey(secret: string): Uint8Array {
  const base64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

export async function sign(secret: string, id: string, timestampSeconds: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", secretKey(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestampSeconds}.${body}`)));
  let binary = "";
  for (const b of mac) binary += String.fromCharCode(b);
  return `v1,${btoa(binary)}`;
}

/** The three headers of a signed request; the signature header lists one signature per secret. */
export async function signedHeaders(secrets: string[], id: string, body: string, now = Date.now()): Promise<SignedHeaders> {
  const timestamp = Math.floor(now / 1000);
  const signatures = await Promise.all(secrets.map((s) => sign(s, id, timestamp, body)));
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signatures.join(" ") };
}

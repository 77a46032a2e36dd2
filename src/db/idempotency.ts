import { Buffer } from "node:buffer";

/** How long a key is remembered (SPEC §3: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A pending key whose request died is taken over by a repeat after this long. */
export const IDEMPOTENCY_LOCK_MS = 60_000;

export type KeyClaim =
  | { kind: "owned" }
  | { kind: "replay"; status: number; body: string }
  | { kind: "in_flight" }
  | { kind: "mismatch" };

/**
 * Claims an idempotency key for a request in one statement, so two concurrent requests can
 * never both own it. A key is free when it is new, expired, or pending past its lock for the
 * same request (its first holder died).
 */
export async function claimKey(db: D1Database, scope: string, key: string, requestHash: string, now = Date.now()): Promise<KeyClaim> {
  const owned = await db
    .prepare(
      `INSERT INTO idempotency_keys (namespace_id, idempotency_key, request_hash, state, locked_until, expires_at)
       VALUES (?1, ?2, ?3, 'pending', ?4, ?5)
       ON CONFLICT (namespace_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, state = 'pending',
         locked_until = excluded.locked_until, expires_at = excluded.expires_at, response_status = NULL, response_body = NULL
       WHERE idempotency_keys.expires_at <= ?6
          OR (idempotency_keys.state = 'pending' AND idempotency_keys.locked_until <= ?6 AND idempotency_keys.request_hash = ?3)
       RETURNING state`,
    )
    .bind(scope, key, requestHash, now + IDEMPOTENCY_LOCK_MS, now + IDEMPOTENCY_TTL_MS, now)
    .first();
  if (owned) return { kind: "owned" };
  const existing = await db
    .prepare("SELECT request_hash, state, response_status, response_body FROM idempotency_keys WHERE namespace_id = ? AND idempotency_key = ?")
    .bind(scope, key)
    .first<{ request_hash: string; state: string; response_status: number | null; response_body: string | null }>();
  if (!existing) return claimKey(db, scope, key, requestHash, now);
  if (existing.request_hash !== requestHash) return { kind: "mismatch" };
  if (existing.state === "pending" || existing.response_status === null) return { kind: "in_flight" };
  return { kind: "replay", status: existing.response_status, body: existing.response_body ?? "" };
}

export async function completeKey(db: D1Database, scope: string, key: string, status: number, body: string): Promise<void> {
  await db
    .prepare(
      `UPDATE idempotency_keys SET state = 'done', response_status = ?, response_body = ?
       WHERE namespace_id = ? AND idempotency_key = ? AND state = 'pending'`,
    )
    .bind(status, body, scope, key)
    .run();
}

/** Frees a key whose request failed on the server's side, so that a retry runs again. */
export async function releaseKey(db: D1Database, scope: string, key: string): Promise<void> {
  await db.prepare("DELETE FROM idempotency_keys WHERE namespace_id = ? AND idempotency_key = ? AND state = 'pending'").bind(scope, key).run();
}

/** Deletes up to `limit` expired keys; returns how many went. */
export async function purgeKeys(db: D1Database, now: number, limit: number): Promise<number> {
  const result = await db
    .prepare(
      `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE expires_at <= ? LIMIT ?)`,
    )
    .bind(now, limit)
    .run();
  return result.meta.changes ?? 0;
}

/**
 * Stored responses are sealed: a response may carry a secret (a webhook's `whsec_`) and D1 keeps
 * it for 24 h, so D1 alone must never reveal one. Each body is encrypted with AES-GCM under a
 * key derived (HKDF-SHA-256) from a server secret that D1 does not hold, bound to the
 * namespace and the Idempotency-Key, with the status as associated data.
 */
const SEALED_PREFIX = "sealed:v1:";
const encoder = new TextEncoder();

async function responseKey(serverSecret: string, scope: string, key: string): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", encoder.encode(serverSecret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: encoder.encode("edge-tasks idempotent response v1"), info: encoder.encode(`${scope}\u0000${key}`) },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

export async function sealResponse(serverSecret: string, scope: string, key: string, status: number, body: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(String(status)) },
    await responseKey(serverSecret, scope, key),
    encoder.encode(body),
  );
  return `${SEALED_PREFIX}${Buffer.from(iv).toString("base64")}:${Buffer.from(sealed).toString("base64")}`;
}

/**
 * The body a sealed response held, or null when it cannot be opened (the server secret changed,
 * or the row was altered). A body stored before responses were sealed is returned as it is.
 */
export async function openResponse(serverSecret: string, scope: string, key: string, status: number, stored: string): Promise<string | null> {
  if (!stored.startsWith(SEALED_PREFIX)) return stored;
  const [iv = "", data = ""] = stored.slice(SEALED_PREFIX.length).split(":");
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: Buffer.from(iv, "base64"), additionalData: encoder.encode(String(status)) },
      await responseKey(serverSecret, scope, key),
      Buffer.from(data, "base64"),
    );
    return new TextDecoder().decode(plain);
  } catch {
    return null;
  }
}

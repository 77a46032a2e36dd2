import { constantTimeEqual, sha256Hex } from "../ids";
import { keysetPage, newestFirst, type Page, type PageRequest } from "./keyset";

export interface ApiKey {
  key_id: string;
  name: string | null;
  created_at: string;
  revoked_at: string | null;
}

/** Who a valid key speaks for. */
export interface KeyPrincipal {
  key_id: string;
  namespace_id: string;
  namespace_name: string;
}

/**
 * Successful key lookups are cached per isolate for at most this long, so a revoked key is
 * refused within this bound everywhere (SPEC §4 promises 60 s).
 */
export const KEY_CACHE_TTL_MS = 30_000;
/**
 * The cache is keyed by the secret itself, so a request whose key it holds computes no hash
 * (a digest is a promise round trip through the runtime: a measurable part of a request). Each
 * entry keeps the key's hash, by which a revocation finds it.
 */
const cache = new Map<string, { hash: string; principal: KeyPrincipal; expires: number }>();

/** Forgets the cached lookups of the key with this hash (its revocation in this isolate). */
function forgetKey(hash: string): void {
  for (const [secret, entry] of cache) if (entry.hash === hash) cache.delete(secret);
}

export async function insertKey(db: D1Database, namespaceId: string, key: ApiKey, secret: string): Promise<void> {
  await db
    .prepare("INSERT INTO api_keys (key_id, namespace_id, name, key_hash, created_at) VALUES (?, ?, ?, ?, ?)")
    .bind(key.key_id, namespaceId, key.name, await sha256Hex(secret), key.created_at)
    .run();
}

/** A page of a namespace's keys, newest first. */
export function listKeys(db: D1Database, namespaceId: string, req: PageRequest<[string, string]>): Promise<Page<ApiKey, [string, string]>> {
  const keys = { select: "key_id, name, created_at, revoked_at", from: "api_keys" };
  return keysetPage(db, newestFirst(keys, { namespace_id: namespaceId }, ["created_at", "key_id"], (key: ApiKey): [string, string] => [key.created_at, key.key_id]), req);
}

/** Revokes a key; false when the namespace has no such key. Idempotent. */
export async function revokeKey(db: D1Database, namespaceId: string, keyId: string, at: string): Promise<boolean> {
  const row = await db
    .prepare("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ? AND namespace_id = ? RETURNING key_hash")
    .bind(at, keyId, namespaceId)
    .first<{ key_hash: string }>();
  if (row) forgetKey(row.key_hash);
  return row !== null;
}

/**
 * Which of `keyIds` are valid keys of the namespace (not revoked), in one query however many:
 * the Durable Object ends the streams of the others.
 */
export async function liveKeyIds(db: D1Database, namespaceId: string, keyIds: string[]): Promise<Set<string>> {
  const { results } = await db
    .prepare("SELECT key_id FROM api_keys WHERE namespace_id = ? AND revoked_at IS NULL AND key_id IN (SELECT value FROM json_each(?))")
    .bind(namespaceId, JSON.stringify(keyIds))
    .all<{ key_id: string }>();
  return new Set(results.map((r) => r.key_id));
}

/**
 * Resolves a secret key to its namespace, or null for an unknown or revoked key. `beforeLookup`
 * runs before the key is looked up in D1 (not when the cache answers) and may refuse by throwing.
 */
export async function authenticateKey(db: D1Database, secret: string, now = Date.now(), beforeLookup?: () => Promise<void>): Promise<KeyPrincipal | null> {
  const cached = cache.get(secret);
  if (cached && cached.expires > now) return cached.principal;
  cache.delete(secret);
  await beforeLookup?.();
  const hash = await sha256Hex(secret);
  const row = await db
    .prepare(
      `SELECT k.key_id, k.key_hash, k.namespace_id, n.namespace_name FROM api_keys k
       JOIN namespaces n ON n.namespace_id = k.namespace_id
       WHERE k.key_hash = ? AND k.revoked_at IS NULL`,
    )
    .bind(hash)
    .first<KeyPrincipal & { key_hash: string }>();
  // The row was found by its hash; comparing in constant time anyway keeps the check honest
  // should the lookup ever become a prefix or range scan.
  if (!row || !constantTimeEqual(row.key_hash, hash)) return null;
  const principal = { key_id: row.key_id, namespace_id: row.namespace_id, namespace_name: row.namespace_name };
  if (cache.size > 10_000) cache.clear();
  cache.set(secret, { hash, principal, expires: now + KEY_CACHE_TTL_MS });
  return principal;
}

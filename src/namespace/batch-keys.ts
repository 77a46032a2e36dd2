import type { Sql } from "./sql";

/**
 * How long the object keeps an Idempotency-Key (a single create's or a batch's): the lookups and
 * the scheduler's prune read this one figure, so a key is never pruned while it is still honoured.
 */
export const IDEMPOTENCY_RETENTION_MS = 24 * 3600_000;

/** A batch stored under its key: the request it was made with and its tasks' ids, in order. */
export interface SeenBatch {
  requestHash: string;
  ids: string[];
}

/**
 * The batch `key` made within the retention window, or null. A batch is atomic, so one row
 * (its marker) answers for all of it. A batch stored before migration 9 has a marker without
 * ids and one row per task under `<key>\n<index>`; they were written in the same step as the
 * marker and share its created_at, so they are all still there while the marker is.
 */
export function seenBatch(sql: Sql, key: string, count: number, now: number): SeenBatch | null {
  const marker = sql.one<{ request_hash: string; task_ids: string | null }>(
    "SELECT request_hash, task_ids FROM idempotency WHERE key = ? AND created_at > ?",
    key, now - IDEMPOTENCY_RETENTION_MS,
  );
  if (!marker) return null;
  if (marker.task_ids !== null) return { requestHash: marker.request_hash, ids: JSON.parse(marker.task_ids) as string[] };
  const keys = Array.from({ length: count }, (_, index) => `${key}\n${index}`);
  const byKey = new Map(
    sql
      .all<{ key: string; task_id: string }>("SELECT key, task_id FROM idempotency WHERE key IN (SELECT value FROM json_each(?))", JSON.stringify(keys))
      .map((r) => [r.key, r.task_id]),
  );
  // Another request under the key (a different count) is refused by its hash before its ids matter.
  return { requestHash: marker.request_hash, ids: keys.flatMap((k) => byKey.get(k) ?? []) };
}

/** Stores batch `key` with its tasks' ids, in the step that creates them. */
export function keepBatch(sql: Sql, key: string, requestHash: string, ids: string[], now: number): void {
  sql.run(
    "INSERT OR REPLACE INTO idempotency (key, request_hash, task_id, task_ids, created_at) VALUES (?, ?, '', ?, ?)",
    key, requestHash, JSON.stringify(ids), now,
  );
}

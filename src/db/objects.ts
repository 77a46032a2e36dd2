import { z } from "@hono/zod-openapi";
import { jsonBytes, JsonObjectSchema } from "../tasks/model";

const CONTENT_BYTES = 256 * 1024;
/**
 * Objects per INSERT statement: 4 bound parameters each after the 4 every row shares (namespace,
 * bucket, and the creation time twice), within D1's 100 per statement.
 */
const ROWS_PER_INSERT = 24;
const METADATA_BYTES = 16 * 1024;

export const NewObject = z
  .object({
    key: z.string().max(1024).optional(),
    content: z.string().refine((c) => new TextEncoder().encode(c).byteLength <= CONTENT_BYTES, "at most 256 KiB"),
    metadata: JsonObjectSchema.optional().refine((m) => m === undefined || jsonBytes(m) <= METADATA_BYTES, "at most 16 KiB of JSON"),
  })
  .strict()
  .openapi("NewObject");
export type NewObjectInput = z.infer<typeof NewObject>;

/** Stores objects hidden ('pending'): nobody sees one until its tasks exist (dataplane/objects). */
export async function insertPendingObjects(
  db: D1Database,
  namespaceId: string,
  bucketId: string,
  items: { objectId: string; input: NewObjectInput }[],
  createdAt: string,
  createdMs: number,
): Promise<void> {
  const rows = items.map(({ objectId, input }) => [objectId, input.key ?? null, input.content, JSON.stringify(input.metadata ?? {})]);
  const inserts: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const group = rows.slice(i, i + ROWS_PER_INSERT);
    inserts.push(
      db.prepare(
        `INSERT OR IGNORE INTO objects (object_id, namespace_id, bucket_id, object_key, content, metadata, state, created_at, created_ms)
         VALUES ${group.map((_, j) => `(?${5 + j * 4}, ?1, ?2, ?${6 + j * 4}, ?${7 + j * 4}, ?${8 + j * 4}, 'pending', ?3, ?4)`).join(", ")}`,
      ).bind(namespaceId, bucketId, createdAt, createdMs, ...group.flat()),
    );
  }
  if (inserts.length > 0) await db.batch(inserts);
}

/**
 * Shows objects whose tasks exist, with those tasks' ids: one statement for them all, each
 * object's task ids travelling in one bound JSON list. The list is read once and each of its
 * objects found by id (`+namespace_id` keeps SQLite from walking the namespace's objects and
 * re-reading the list for each one, which made a group of 500 cost a quarter of a million row reads).
 */
export async function showObjects(db: D1Database, namespaceId: string, made: { object_id: string; task_ids: string[] }[]): Promise<void> {
  if (made.length === 0) return;
  await db
    .prepare(
      `UPDATE objects SET state = 'ready', task_ids = made.task_ids
       FROM (SELECT value ->> 0 AS object_id, value ->> 1 AS task_ids FROM json_each(?1)) AS made
       WHERE objects.object_id = made.object_id AND +objects.namespace_id = ?2`,
    )
    .bind(JSON.stringify(made.map((m) => [m.object_id, JSON.stringify(m.task_ids)])), namespaceId)
    .run();
}

/** Objects still hidden that were stored before `beforeMs`. */
export async function pendingObjects(db: D1Database, beforeMs: number, limit: number): Promise<{ object_id: string; namespace_id: string }[]> {
  const { results } = await db.prepare("SELECT object_id, namespace_id FROM objects WHERE state = 'pending' AND created_ms < ? LIMIT ?")
    .bind(beforeMs, limit)
    .all<{ object_id: string; namespace_id: string }>();
  return results;
}

/** Removes a hidden object (its tasks were never made). */
export async function removePendingObject(db: D1Database, namespaceId: string, objectId: string): Promise<void> {
  await db.prepare("DELETE FROM objects WHERE namespace_id = ? AND object_id = ? AND state = 'pending'").bind(namespaceId, objectId).run();
}

import { z } from "@hono/zod-openapi";
import { jsonBytes, JsonObjectSchema } from "../tasks/model";

const CONTENT_BYTES = 256 * 1024;
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
  await db.batch(
    items.map(({ objectId, input }) =>
      db.prepare(
        `INSERT OR IGNORE INTO objects (object_id, namespace_id, bucket_id, object_key, content, metadata, state, created_at, created_ms)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
      ).bind(objectId, namespaceId, bucketId, input.key ?? null, input.content, JSON.stringify(input.metadata ?? {}), createdAt, createdMs),
    ),
  );
}

/** Shows objects whose tasks exist, with those tasks' ids. */
export async function showObjects(db: D1Database, namespaceId: string, made: { object_id: string; task_ids: string[] }[]): Promise<void> {
  await db.batch(made.map((m) => db.prepare("UPDATE objects SET state = 'ready', task_ids = ? WHERE namespace_id = ? AND object_id = ?").bind(JSON.stringify(m.task_ids), namespaceId, m.object_id)));
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

import { embed, toBlob } from "../embed/embedder";
import type { JsonObject } from "../tasks/model";
import { isoNow } from "../time";
import { newId } from "../ids";

/** Embeds an object's content and upserts its document in a collection; returns the document id. */
export async function upsertDocument(db: D1Database, namespaceId: string, collectionId: string, objectId: string, content: string, metadata: JsonObject): Promise<string> {
  const now = isoNow();
  const row = await db
    .prepare(
      `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection_id, object_id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector, updated_at = excluded.updated_at
       RETURNING document_id`,
    )
    .bind(newId("doc"), namespaceId, collectionId, objectId, JSON.stringify(metadata), toBlob(embed(content)), now, now)
    .first<{ document_id: string }>();
  if (!row) throw new Error("document upsert returned nothing");
  return row.document_id;
}

/** Runs updates in D1 batches of `size` statements. */
export async function inBatches(db: D1Database, statements: D1PreparedStatement[], size = 200): Promise<void> {
  for (let i = 0; i < statements.length; i += size) await db.batch(statements.slice(i, i + size));
}

export async function collectionExists(db: D1Database, namespaceId: string, collectionId: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS x FROM collections WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId).first("x")) !== null;
}

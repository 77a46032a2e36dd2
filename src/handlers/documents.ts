import { toBlob } from "../embed/embedder";
import { EmbeddingError, embedTexts, type FeatureExtractor, parseExtractor } from "../embed/extractor";
import { VectorIndex } from "../embed/vector-index";
import { newId } from "../ids";
import type { JsonObject } from "../tasks/model";
import { isoNow } from "../time";
import { TaskFailure } from "./registry";

export interface DocumentInput {
  objectId: string;
  metadata: JsonObject;
  vector: Float32Array;
}

/** Upserts documents of a collection in one D1 batch; returns their ids in order. */
export async function upsertDocuments(db: D1Database, namespaceId: string, collectionId: string, documents: DocumentInput[]): Promise<string[]> {
  if (documents.length === 0) return [];
  const now = isoNow();
  const results = await db.batch<{ document_id: string }>(
    documents.map((d) =>
      db
        .prepare(
          `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, codes, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (collection_id, object_id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector, codes = excluded.codes, updated_at = excluded.updated_at
           RETURNING document_id`,
        )
        .bind(newId("doc"), namespaceId, collectionId, d.objectId, JSON.stringify(d.metadata), toBlob(d.vector), VectorIndex.encode(d.vector), now, now),
    ),
  );
  return results.map((r) => {
    const id = r.results[0]?.document_id;
    if (!id) throw new Error("document upsert returned nothing");
    return id;
  });
}

/**
 * Embeds texts with a collection's extractor for a handler: a Workers AI failure fails the
 * attempt as retryable, a missing AI binding as final. Vectors must also match the dimensions of
 * the collection's documents (`dimensions`, when it has any): a model answering otherwise is
 * treated like any other malformed answer.
 */
export async function embedForTask(env: Env, extractor: FeatureExtractor, texts: string[], dimensions: number | null = null): Promise<Float32Array[]> {
  try {
    const vectors = await embedTexts(env, extractor, texts);
    const odd = vectors.find((v) => dimensions !== null && v.length !== dimensions);
    if (odd) throw new EmbeddingError("ai_invalid_answer", `the extractor gave ${odd.length} dimensions; the collection's documents have ${dimensions}`, true);
    return vectors;
  } catch (err) {
    if (!(err instanceof EmbeddingError)) throw err;
    throw new TaskFailure(err.code, err.message, err.retryable);
  }
}

/** A collection's feature extractor, or null if the collection is gone. */
export async function collectionExtractor(db: D1Database, namespaceId: string, collectionId: string): Promise<FeatureExtractor | null> {
  const row = await db.prepare("SELECT feature_extractor FROM collections WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId).first<{ feature_extractor: string }>();
  return row ? parseExtractor(row.feature_extractor) : null;
}

/** The dimensions of a namespace's collection's documents, or null while it has none. */
export async function collectionDimensions(db: D1Database, namespaceId: string, collectionId: string): Promise<number | null> {
  const bytes = await db
    .prepare("SELECT length(vector) AS n FROM documents WHERE namespace_id = ? AND collection_id = ? LIMIT 1")
    .bind(namespaceId, collectionId)
    .first<number>("n");
  return bytes === null ? null : bytes / 4;
}

/** Runs updates in D1 batches of `size` statements. */
export async function inBatches(db: D1Database, statements: D1PreparedStatement[], size = 200): Promise<void> {
  for (let i = 0; i < statements.length; i += size) await db.batch(statements.slice(i, i + size));
}

export async function collectionExists(db: D1Database, namespaceId: string, collectionId: string): Promise<boolean> {
  return (await collectionExtractor(db, namespaceId, collectionId)) !== null;
}

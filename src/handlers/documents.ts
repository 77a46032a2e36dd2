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
  return upsertDocumentsOfCollections(db, namespaceId, documents.map((d) => ({ ...d, collectionId })));
}

/** Documents per upsert statement: 9 bound parameters each, within D1's 100 per statement. */
const DOCUMENTS_PER_STATEMENT = 11;

/**
 * Upserts documents of any collections of a namespace in one D1 batch, several rows a
 * statement; returns their ids in order.
 */
export async function upsertDocumentsOfCollections(db: D1Database, namespaceId: string, documents: (DocumentInput & { collectionId: string })[]): Promise<string[]> {
  if (documents.length === 0) return [];
  const now = isoNow();
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < documents.length; i += DOCUMENTS_PER_STATEMENT) {
    const group = documents.slice(i, i + DOCUMENTS_PER_STATEMENT);
    statements.push(
      db
        .prepare(
          `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, codes, created_at, updated_at)
           VALUES ${group.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}
           ON CONFLICT (collection_id, object_id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector, codes = excluded.codes, updated_at = excluded.updated_at
           RETURNING collection_id, object_id, document_id`,
        )
        .bind(...group.flatMap((d) => [newId("doc"), namespaceId, d.collectionId, d.objectId, JSON.stringify(d.metadata), toBlob(d.vector), VectorIndex.encode(d.vector), now, now])),
    );
  }
  const results = await db.batch<{ collection_id: string; object_id: string; document_id: string }>(statements);
  // RETURNING promises no order: each row is matched to its document by its key.
  const ids = new Map<string, string>();
  for (const r of results) for (const row of r.results) ids.set(`${row.collection_id}\n${row.object_id}`, row.document_id);
  return documents.map((d) => {
    const id = ids.get(`${d.collectionId}\n${d.objectId}`);
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

/** Extractors and document dimensions of a namespace's collections, in one query; a collection gone is absent. */
export async function collectionsForWork(db: D1Database, namespaceId: string, collectionIds: string[]): Promise<Map<string, { extractor: FeatureExtractor; dimensions: number | null }>> {
  const { results } = await db
    .prepare(
      `SELECT c.collection_id, c.feature_extractor,
         (SELECT length(d.vector) FROM documents d WHERE d.namespace_id = c.namespace_id AND d.collection_id = c.collection_id LIMIT 1) AS bytes
       FROM collections c WHERE c.namespace_id = ? AND c.collection_id IN (SELECT value FROM json_each(?))`,
    )
    .bind(namespaceId, JSON.stringify(collectionIds))
    .all<{ collection_id: string; feature_extractor: string; bytes: number | null }>();
  return new Map(results.map((r) => [r.collection_id, { extractor: parseExtractor(r.feature_extractor), dimensions: r.bytes === null ? null : r.bytes / 4 }]));
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

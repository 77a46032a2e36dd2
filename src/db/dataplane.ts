import { fromBlob } from "../embed/embedder";
import type { JsonObject } from "../tasks/model";

export interface Bucket {
  bucket_id: string;
  bucket_name: string;
  description: string | null;
  created_at: string;
}

export interface StoredObject {
  object_id: string;
  bucket_id: string;
  key: string | null;
  metadata: JsonObject;
  created_at: string;
  task_ids: string[];
}

export interface Collection {
  collection_id: string;
  collection_name: string;
  source_bucket_ids: string[];
  feature_extractor: { type: string };
  created_at: string;
}

export interface DocumentRow {
  document_id: string;
  object_id: string;
  metadata: string;
  vector: ArrayBuffer;
  cluster_id: number | null;
  taxonomy: string | null;
  created_at: string;
  updated_at: string;
}

export async function findBucket(db: D1Database, ns: string, idOrName: string): Promise<Bucket | null> {
  return db
    .prepare("SELECT bucket_id, bucket_name, description, created_at FROM buckets WHERE namespace_id = ?1 AND (bucket_id = ?2 OR bucket_name = ?2)")
    .bind(ns, idOrName)
    .first<Bucket>();
}

type ObjectRow = { object_id: string; bucket_id: string; object_key: string | null; metadata: string; created_at: string; task_ids: string; content?: string };

const toObject = (r: ObjectRow): StoredObject & { content?: string } => ({
  object_id: r.object_id,
  bucket_id: r.bucket_id,
  key: r.object_key,
  metadata: JSON.parse(r.metadata) as JsonObject,
  created_at: r.created_at,
  task_ids: JSON.parse(r.task_ids) as string[],
  ...(r.content !== undefined ? { content: r.content } : {}),
});

/** A visible object (one whose tasks exist), with its content. */
export async function getObject(db: D1Database, ns: string, objectId: string): Promise<(StoredObject & { content?: string }) | null> {
  const row = await db
    .prepare("SELECT * FROM objects WHERE namespace_id = ? AND object_id = ? AND state = 'ready'")
    .bind(ns, objectId)
    .first<ObjectRow>();
  return row ? toObject(row) : null;
}

/** An object whatever its state: handlers may run before the creating request marks it ready. */
export async function getObjectForWork(db: D1Database, ns: string, objectId: string): Promise<{ content: string; metadata: JsonObject } | null> {
  const row = await db.prepare("SELECT content, metadata FROM objects WHERE namespace_id = ? AND object_id = ?").bind(ns, objectId).first<{ content: string; metadata: string }>();
  return row ? { content: row.content, metadata: JSON.parse(row.metadata) as JsonObject } : null;
}

export async function listObjects(db: D1Database, ns: string, bucketId: string, limit: number, after: { ms: number; id: string } | null) {
  const { results } = await db
    .prepare(
      `SELECT object_id, bucket_id, object_key, metadata, created_at, created_ms, task_ids FROM objects
       WHERE namespace_id = ? AND bucket_id = ? AND state = 'ready' ${after ? "AND (created_ms, object_id) < (?, ?)" : ""}
       ORDER BY created_ms DESC, object_id DESC LIMIT ?`,
    )
    .bind(ns, bucketId, ...(after ? [after.ms, after.id] : []), limit + 1)
    .all<ObjectRow & { created_ms: number }>();
  const page = results.slice(0, limit);
  const last = page[page.length - 1];
  return { objects: page.map(toObject), next: results.length > limit && last ? { ms: last.created_ms, id: last.object_id } : null };
}

type CollectionRow = { collection_id: string; collection_name: string; feature_extractor: string; created_at: string; sources: string | null };

const toCollection = (r: CollectionRow): Collection => ({
  collection_id: r.collection_id,
  collection_name: r.collection_name,
  source_bucket_ids: r.sources ? r.sources.split(",") : [],
  feature_extractor: JSON.parse(r.feature_extractor) as { type: string },
  created_at: r.created_at,
});

const COLLECTION_SELECT = `SELECT c.collection_id, c.collection_name, c.feature_extractor, c.created_at,
  (SELECT group_concat(bucket_id) FROM collection_sources s WHERE s.collection_id = c.collection_id) AS sources
  FROM collections c`;

export async function findCollection(db: D1Database, ns: string, idOrName: string): Promise<Collection | null> {
  const row = await db
    .prepare(`${COLLECTION_SELECT} WHERE c.namespace_id = ?1 AND (c.collection_id = ?2 OR c.collection_name = ?2)`)
    .bind(ns, idOrName)
    .first<CollectionRow>();
  return row ? toCollection(row) : null;
}

export async function listCollections(db: D1Database, ns: string): Promise<Collection[]> {
  const { results } = await db.prepare(`${COLLECTION_SELECT} WHERE c.namespace_id = ? ORDER BY c.created_at DESC, c.collection_id DESC`).bind(ns).all<CollectionRow>();
  return results.map(toCollection);
}

/** The collections whose sources include a bucket: each gets an object_create task per object. */
export async function collectionsSourcing(db: D1Database, ns: string, bucketId: string): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT collection_id FROM collection_sources WHERE namespace_id = ? AND bucket_id = ? ORDER BY collection_id")
    .bind(ns, bucketId)
    .all<{ collection_id: string }>();
  return results.map((r) => r.collection_id);
}

/** Every vector of a collection, in a stable order. */
export async function collectionVectors(db: D1Database, collectionId: string): Promise<{ ids: string[]; vectors: Float32Array[]; metadata: JsonObject[] }> {
  const ids: string[] = [];
  const vectors: Float32Array[] = [];
  const metadata: JsonObject[] = [];
  let after = "";
  for (;;) {
    const { results } = await db
      .prepare("SELECT document_id, vector, metadata FROM documents WHERE collection_id = ? AND document_id > ? ORDER BY document_id LIMIT 5000")
      .bind(collectionId, after)
      .all<{ document_id: string; vector: ArrayBuffer; metadata: string }>();
    for (const r of results) {
      ids.push(r.document_id);
      vectors.push(fromBlob(r.vector));
      metadata.push(JSON.parse(r.metadata) as JsonObject);
    }
    const last = results[results.length - 1];
    if (!last || results.length < 5000) break;
    after = last.document_id;
  }
  return { ids, vectors, metadata };
}

export async function findTaxonomy(db: D1Database, ns: string, idOrName: string) {
  return db
    .prepare("SELECT taxonomy_id, taxonomy_name, nodes, created_at FROM taxonomies WHERE namespace_id = ?1 AND (taxonomy_id = ?2 OR taxonomy_name = ?2)")
    .bind(ns, idOrName)
    .first<{ taxonomy_id: string; taxonomy_name: string; nodes: string; created_at: string }>();
}

export async function findModel(db: D1Database, ns: string, idOrName: string) {
  return db
    .prepare(
      `SELECT model_id, model_name, collection_id, label_field, version, weights, metrics, trained_at, created_at FROM models
       WHERE namespace_id = ?1 AND (model_id = ?2 OR model_name = ?2)`,
    )
    .bind(ns, idOrName)
    .first<{ model_id: string; model_name: string; collection_id: string; label_field: string; version: number; weights: string | null; metrics: string | null; trained_at: string | null; created_at: string }>();
}

import { type FeatureExtractor, parseExtractor } from "../tasks/extractor-config";
import { fromBlob } from "../tasks/vector-blob";
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
  feature_extractor: FeatureExtractor;
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

export type ObjectRow = { object_id: string; bucket_id: string; object_key: string | null; metadata: string; created_at: string; task_ids: string; content?: string };

export const toObject = (r: ObjectRow): StoredObject & { content?: string } => ({
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

export type ObjectForWorkRow = { object_id: string; content: string; metadata: string };

/**
 * The objects of a namespace among `objectIds`, in one statement (one bound list, whatever its
 * length), each found by id: `+namespace_id` keeps SQLite from walking all the namespace's
 * objects. Batched with the collections' read by workInputRows (db/documents.ts).
 */
export function objectsForWorkQuery(db: D1Database, ns: string, objectIds: string[]): D1PreparedStatement {
  return db
    .prepare("SELECT object_id, content, metadata FROM objects WHERE object_id IN (SELECT value FROM json_each(?2)) AND +namespace_id = ?1")
    .bind(ns, JSON.stringify(objectIds));
}

/** The objects read by objectsForWorkQuery, by id. */
export function objectsForWorkOf(result: { results: ObjectForWorkRow[] }): Map<string, { content: string; metadata: JsonObject }> {
  return new Map(result.results.map((r) => [r.object_id, { content: r.content, metadata: JSON.parse(r.metadata) as JsonObject }]));
}

export type CollectionRow = { collection_id: string; collection_name: string; feature_extractor: string; created_at: string; sources: string | null; vectors_version: number };

export const toCollection = (r: CollectionRow): Collection => ({
  collection_id: r.collection_id,
  collection_name: r.collection_name,
  source_bucket_ids: r.sources ? r.sources.split(",") : [],
  feature_extractor: parseExtractor(r.feature_extractor),
  created_at: r.created_at,
});

export const COLLECTION_COLUMNS = `c.collection_id, c.collection_name, c.feature_extractor, c.created_at, c.vectors_version,
  (SELECT group_concat(bucket_id) FROM collection_sources s WHERE s.collection_id = c.collection_id) AS sources`;
const COLLECTION_SELECT = `SELECT ${COLLECTION_COLUMNS} FROM collections c`;

export async function findCollection(db: D1Database, ns: string, idOrName: string): Promise<Collection | null> {
  return (await findCollectionWithVersion(db, ns, idOrName))?.collection ?? null;
}

/** A collection and the version of its vectors (bumped by every change to them, see migration 0005). */
export async function findCollectionWithVersion(db: D1Database, ns: string, idOrName: string): Promise<{ collection: Collection; vectorsVersion: number } | null> {
  const row = await db
    .prepare(`${COLLECTION_SELECT} WHERE c.namespace_id = ?1 AND (c.collection_id = ?2 OR c.collection_name = ?2)`)
    .bind(ns, idOrName)
    .first<CollectionRow>();
  return row ? { collection: toCollection(row), vectorsVersion: row.vectors_version } : null;
}

/** The collections whose sources include a bucket: each gets an object_create task per object. */
export async function collectionsSourcing(db: D1Database, ns: string, bucketId: string): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT collection_id FROM collection_sources WHERE namespace_id = ? AND bucket_id = ? ORDER BY collection_id")
    .bind(ns, bucketId)
    .all<{ collection_id: string }>();
  return results.map((r) => r.collection_id);
}

/** Every vector of a namespace's collection, in a stable order. */
export async function collectionVectors(db: D1Database, namespaceId: string, collectionId: string): Promise<{ ids: string[]; vectors: Float32Array[]; metadata: JsonObject[] }> {
  const ids: string[] = [];
  const vectors: Float32Array[] = [];
  const metadata: JsonObject[] = [];
  let after = "";
  for (;;) {
    const { results } = await db
      .prepare("SELECT document_id, vector, metadata FROM documents WHERE namespace_id = ? AND collection_id = ? AND document_id > ? ORDER BY document_id LIMIT 5000")
      .bind(namespaceId, collectionId, after)
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

/** Tombstones older than this many versions are dropped by migration 0005's trigger. */
export const TOMBSTONE_WINDOW = 50_000;

/** What a full load of a collection's vectors starts from; null if the collection is gone. */
export async function vectorsHeader(db: D1Database, collectionId: string): Promise<{ version: number; count: number; dimensions: number } | null> {
  const [version, stats] = await db.batch([
    db.prepare("SELECT vectors_version AS v FROM collections WHERE collection_id = ?").bind(collectionId),
    db.prepare("SELECT COUNT(*) AS n, MAX(length(vector)) AS bytes FROM documents WHERE collection_id = ?").bind(collectionId),
  ]);
  const v = (version?.results[0] as { v: number } | undefined)?.v;
  const s = stats?.results[0] as { n: number; bytes: number | null } | undefined;
  return v === undefined ? null : { version: v, count: s?.n ?? 0, dimensions: (s?.bytes ?? 0) / 4 };
}

/** A stored vector for the search cache: its encoded form where stored, else the floats. */
export type StoredVector = { encoded: Uint8Array } | { vector: Float32Array };

/** The encoded vector (migration 0006) where there is one: a quarter of the bytes to read. */
const STORED_VECTOR = "codes, CASE WHEN codes IS NULL THEN vector END AS vector";
type StoredVectorRow = { codes: BlobLike | null; vector: BlobLike | null };
type BlobLike = ArrayBuffer | Uint8Array | number[];

const toStored = (r: StoredVectorRow): StoredVector =>
  r.codes !== null ? { encoded: bytesOf(r.codes) } : { vector: fromBlob(r.vector ?? new ArrayBuffer(0)) };
const bytesOf = (blob: BlobLike): Uint8Array => (blob instanceof Uint8Array ? blob : blob instanceof ArrayBuffer ? new Uint8Array(blob) : Uint8Array.from(blob));

/** A page of a collection's vectors (for the search cache) in id order. */
export async function storedVectorPage(db: D1Database, collectionId: string, after: string, limit: number): Promise<({ document_id: string } & StoredVector)[]> {
  const { results } = await db
    .prepare(`SELECT document_id, ${STORED_VECTOR} FROM documents WHERE collection_id = ? AND document_id > ? ORDER BY document_id LIMIT ?`)
    .bind(collectionId, after, limit)
    .all<{ document_id: string } & StoredVectorRow>();
  return results.map((r) => ({ document_id: r.document_id, ...toStored(r) }));
}

/** A page of a collection's float vectors in id order. */
export async function vectorPage(db: D1Database, collectionId: string, after: string, limit: number): Promise<{ document_id: string; vector: Float32Array }[]> {
  const { results } = await db
    .prepare("SELECT document_id, vector FROM documents WHERE collection_id = ? AND document_id > ? ORDER BY document_id LIMIT ?")
    .bind(collectionId, after, limit)
    .all<{ document_id: string; vector: ArrayBuffer }>();
  return results.map((r) => ({ document_id: r.document_id, vector: fromBlob(r.vector) }));
}

export interface VectorChange {
  document_id: string;
  version: number;
  /** null: the document was deleted. */
  stored: StoredVector | null;
}

/**
 * The changes to a collection's vectors after version `since`, oldest first, read in one
 * transaction with the current version. `complete` is false when there are more than `limit` of
 * either kind, or tombstones may have been dropped: then only a full load is right.
 */
export async function vectorChanges(db: D1Database, collectionId: string, since: number, limit: number): Promise<{ version: number; changes: VectorChange[]; complete: boolean } | null> {
  const [version, changed, deleted] = await db.batch([
    db.prepare("SELECT vectors_version AS v FROM collections WHERE collection_id = ?").bind(collectionId),
    db.prepare(`SELECT document_id, vector_version, ${STORED_VECTOR} FROM documents WHERE collection_id = ? AND vector_version > ? ORDER BY vector_version LIMIT ?`).bind(collectionId, since, limit + 1),
    db.prepare("SELECT document_id, vector_version FROM document_tombstones WHERE collection_id = ? AND vector_version > ? ORDER BY vector_version LIMIT ?").bind(collectionId, since, limit + 1),
  ]);
  const v = (version?.results[0] as { v: number } | undefined)?.v;
  if (v === undefined) return null;
  const rows = (changed?.results ?? []) as ({ document_id: string; vector_version: number } & StoredVectorRow)[];
  const gone = (deleted?.results ?? []) as { document_id: string; vector_version: number }[];
  const complete = rows.length <= limit && gone.length <= limit && v - since <= TOMBSTONE_WINDOW;
  const changes: VectorChange[] = [
    ...rows.map((r) => ({ document_id: r.document_id, version: r.vector_version, stored: toStored(r) })),
    ...gone.map((r) => ({ document_id: r.document_id, version: r.vector_version, stored: null })),
  ].sort((a, b) => a.version - b.version);
  return { version: v, changes, complete };
}

/** Documents of a collection by id, with their vectors; missing ones are left out. */
export async function documentsByIds(db: D1Database, collectionId: string, ids: string[]): Promise<{ document_id: string; object_id: string; metadata: JsonObject; vector: Float32Array }[]> {
  const CHUNK = 500;
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    statements.push(
      db
        .prepare("SELECT document_id, object_id, metadata, vector FROM documents WHERE collection_id = ? AND document_id IN (SELECT value FROM json_each(?))")
        .bind(collectionId, JSON.stringify(ids.slice(i, i + CHUNK))),
    );
  }
  if (statements.length === 0) return [];
  const results = await db.batch<{ document_id: string; object_id: string; metadata: string; vector: ArrayBuffer }>(statements);
  return results.flatMap((r) => r.results.map((d) => ({ document_id: d.document_id, object_id: d.object_id, metadata: JSON.parse(d.metadata) as JsonObject, vector: fromBlob(d.vector) })));
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

import { QUOTA_DEFAULTS } from "../tasks/model";

/**
 * The data plane's catalogue in D1: creating and deleting buckets, objects, collections,
 * taxonomies and models. Reads live in dataplane.ts, lists in dataplane-lists.ts. Every
 * statement names the namespace, so no id of one namespace can reach another's rows.
 */

export interface NewBucket {
  bucket_id: string;
  bucket_name: string;
  description: string | null;
  created_at: string;
}

/** Inserts a bucket; a taken name fails with D1's UNIQUE error (callers map it to 409). */
export async function insertBucket(db: D1Database, namespaceId: string, bucket: NewBucket): Promise<void> {
  await db
    .prepare("INSERT INTO buckets (bucket_id, namespace_id, bucket_name, description, created_at) VALUES (?, ?, ?, ?, ?)")
    .bind(bucket.bucket_id, namespaceId, bucket.bucket_name, bucket.description, bucket.created_at)
    .run();
}

/** Deletes a bucket and its objects in one batch. */
export async function deleteBucket(db: D1Database, namespaceId: string, bucketId: string): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM objects WHERE namespace_id = ? AND bucket_id = ?").bind(namespaceId, bucketId),
    db.prepare("DELETE FROM buckets WHERE namespace_id = ? AND bucket_id = ?").bind(namespaceId, bucketId),
  ]);
}

/** Deletes an object and the documents derived from it in one batch. */
export async function deleteObject(db: D1Database, namespaceId: string, objectId: string): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM documents WHERE namespace_id = ? AND object_id = ?").bind(namespaceId, objectId),
    db.prepare("DELETE FROM objects WHERE namespace_id = ? AND object_id = ?").bind(namespaceId, objectId),
  ]);
}

/** Whether the namespace has this bucket. */
export async function bucketExists(db: D1Database, namespaceId: string, bucketId: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS x FROM buckets WHERE namespace_id = ? AND bucket_id = ?").bind(namespaceId, bucketId).first("x")) !== null;
}

/** The namespace's `max_collections`, from its settings (?2 is the namespace in the queries below). */
const COLLECTION_QUOTA = `SELECT COALESCE(json_extract(settings, '$.max_collections'), ${QUOTA_DEFAULTS.max_collections}) FROM namespaces WHERE namespace_id = ?2`;

export interface NewCollection {
  collection_id: string;
  collection_name: string;
  source_bucket_ids: string[];
  feature_extractor: unknown;
  created_at: string;
}

/**
 * Inserts a collection with its sources, unless the namespace has reached `max_collections`:
 * the quota is checked in the insert itself, so concurrent creates cannot pass it together.
 * Returns null when it was inserted, else the quota that refused it. A taken name fails with
 * D1's UNIQUE error.
 */
export async function insertCollection(db: D1Database, namespaceId: string, collection: NewCollection): Promise<{ quota: number } | null> {
  const [inserted] = await db.batch([
    db
      .prepare(
        `INSERT INTO collections (collection_id, namespace_id, collection_name, feature_extractor, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE (SELECT COUNT(*) FROM collections WHERE namespace_id = ?2) < (${COLLECTION_QUOTA})`,
      )
      .bind(collection.collection_id, namespaceId, collection.collection_name, JSON.stringify(collection.feature_extractor), collection.created_at),
    ...collection.source_bucket_ids.map((b) =>
      db
        .prepare(
          "INSERT INTO collection_sources (collection_id, bucket_id, namespace_id) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM collections WHERE collection_id = ?1)",
        )
        .bind(collection.collection_id, b, namespaceId),
    ),
  ]);
  if (inserted && inserted.meta.changes > 0) return null;
  const quota = await db.prepare(`SELECT (${COLLECTION_QUOTA}) AS n`).bind(collection.collection_id, namespaceId).first<number>("n");
  return { quota: quota ?? QUOTA_DEFAULTS.max_collections };
}

/**
 * Deletes a collection with its documents, sources and models. The collection row goes first:
 * its documents then leave no tombstones (migration 0005).
 */
export async function deleteCollection(db: D1Database, namespaceId: string, collectionId: string): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM collections WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId),
    db.prepare("DELETE FROM documents WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId),
    db.prepare("DELETE FROM document_tombstones WHERE collection_id = ?").bind(collectionId),
    db.prepare("DELETE FROM collection_sources WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId),
    db.prepare("DELETE FROM models WHERE namespace_id = ? AND collection_id = ?").bind(namespaceId, collectionId),
  ]);
}

export interface NewTaxonomy {
  taxonomy_id: string;
  taxonomy_name: string;
  nodes: unknown;
  created_at: string;
}

/** Inserts a taxonomy; a taken name fails with D1's UNIQUE error. */
export async function insertTaxonomy(db: D1Database, namespaceId: string, taxonomy: NewTaxonomy): Promise<void> {
  await db
    .prepare("INSERT INTO taxonomies (taxonomy_id, namespace_id, taxonomy_name, nodes, created_at) VALUES (?, ?, ?, ?, ?)")
    .bind(taxonomy.taxonomy_id, namespaceId, taxonomy.taxonomy_name, JSON.stringify(taxonomy.nodes), taxonomy.created_at)
    .run();
}

/** Deletes a taxonomy and the labels it gave documents. */
export async function deleteTaxonomy(db: D1Database, namespaceId: string, taxonomyId: string): Promise<void> {
  await db.batch([
    db.prepare("UPDATE documents SET taxonomy = NULL WHERE namespace_id = ? AND json_extract(taxonomy, '$.taxonomy_id') = ?").bind(namespaceId, taxonomyId),
    db.prepare("DELETE FROM taxonomies WHERE namespace_id = ? AND taxonomy_id = ?").bind(namespaceId, taxonomyId),
  ]);
}

export interface NewModel {
  model_id: string;
  model_name: string;
  collection_id: string;
  label_field: string;
  created_at: string;
}

/** Inserts a model; a taken name fails with D1's UNIQUE error. */
export async function insertModel(db: D1Database, namespaceId: string, model: NewModel): Promise<void> {
  await db
    .prepare("INSERT INTO models (model_id, namespace_id, model_name, collection_id, label_field, created_at) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(model.model_id, namespaceId, model.model_name, model.collection_id, model.label_field, model.created_at)
    .run();
}

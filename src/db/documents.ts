import { Buffer } from "node:buffer";
import type { JsonObject } from "../tasks/model";
import { newId } from "../ids";
import { isoNow } from "../time";
import { type ObjectForWorkRow, objectsForWorkOf, objectsForWorkQuery } from "./dataplane";

const hex = (bytes: ArrayBuffer | Uint8Array): string =>
  (bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.from(bytes)).toString("hex");

/**
 * The documents of collections in D1, as the built-in handlers write and read them. Vectors
 * arrive encoded (a float32 blob and its int8 codes): this module stores, it does not embed.
 */

/** Parameters every row of an upsert statement shares: ?1 the namespace, ?2 the time. */
const SHARED_PARAMETERS = 2;
/** Bound parameters of one document in the upsert (documentValues). */
const PARAMETERS_PER_DOCUMENT = 6;
/** Documents per upsert statement, within D1's 100 bound parameters a statement. */
const DOCUMENTS_PER_STATEMENT = Math.floor((100 - SHARED_PARAMETERS) / PARAMETERS_PER_DOCUMENT);

/** The `j`-th document's row of an upsert statement (see upsertDocumentRows for its parameters). */
function documentValues(j: number): string {
  const p = (n: number) => `?${SHARED_PARAMETERS + j * PARAMETERS_PER_DOCUMENT + n}`;
  // Stamped with the collection's next vectors_version (migration 0009); 0 if the collection is
  // gone, which leaves the stamping to the insert trigger as for any other write.
  const version = `COALESCE((SELECT vectors_version + 1 FROM collections WHERE collection_id = ${p(2)}), 0)`;
  return `(${p(1)}, ?1, ${p(2)}, ${p(3)}, ${p(4)}, unhex(${p(5)}), unhex(${p(6)}), ?2, ?2, ${version})`;
}

export interface DocumentRowInput {
  collectionId: string;
  objectId: string;
  metadata: JsonObject;
  /** The vector as float32 bytes. */
  vector: ArrayBuffer;
  /** The vector's int8 codes for the search cache. */
  codes: Uint8Array;
}

/**
 * Upserts documents of any collections of a namespace in one D1 batch, several rows a
 * statement; returns their ids in order. A new document is stamped with its collection's next
 * vectors_version as it is inserted, and the last statement raises each collection's version
 * to its highest stamp: once a batch, where the insert trigger rewrote each new row and bumped
 * the version once per document. A document written again with its vector unchanged bumps
 * nothing (its update trigger does not fire, and it keeps its stamp).
 */
export async function upsertDocumentRows(db: D1Database, namespaceId: string, documents: DocumentRowInput[]): Promise<string[]> {
  if (documents.length === 0) return [];
  const now = isoNow();
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < documents.length; i += DOCUMENTS_PER_STATEMENT) {
    const group = documents.slice(i, i + DOCUMENTS_PER_STATEMENT);
    statements.push(
      db
        .prepare(
          `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, codes, created_at, updated_at, vector_version)
           VALUES ${group.map((_, j) => documentValues(j)).join(", ")}
           ON CONFLICT (collection_id, object_id) DO UPDATE SET metadata = excluded.metadata, vector = excluded.vector, codes = excluded.codes, updated_at = excluded.updated_at
           RETURNING collection_id, object_id, document_id`,
        )
        // Blobs go as hex text that SQLite decodes: D1 sends bound bytes as a JSON array of numbers.
        .bind(namespaceId, now, ...group.flatMap((d) => [newId("doc"), d.collectionId, d.objectId, JSON.stringify(d.metadata), hex(d.vector), hex(d.codes)])),
    );
  }
  statements.push(raiseVectorsVersions(db, namespaceId, [...new Set(documents.map((d) => d.collectionId))]));
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
 * Raises each collection's vectors_version to the highest stamp among its documents, where a
 * stamped insert went past it (the maximum comes from the (collection_id, vector_version) index).
 */
function raiseVectorsVersions(db: D1Database, namespaceId: string, collectionIds: string[]): D1PreparedStatement {
  const highest = "(SELECT MAX(d.vector_version) FROM documents d WHERE d.collection_id = collections.collection_id)";
  return db
    .prepare(
      `UPDATE collections SET vectors_version = ${highest}
       WHERE collection_id IN (SELECT value FROM json_each(?1)) AND +namespace_id = ?2 AND vectors_version < ${highest}`,
    )
    .bind(JSON.stringify(collectionIds), namespaceId);
}

/** A collection's feature extractor as stored (JSON), or null if the namespace has no such collection. */
export async function collectionExtractorJson(db: D1Database, namespaceId: string, collectionId: string): Promise<string | null> {
  const row = await db
    .prepare("SELECT feature_extractor FROM collections WHERE namespace_id = ? AND collection_id = ?")
    .bind(namespaceId, collectionId)
    .first<{ feature_extractor: string }>();
  return row?.feature_extractor ?? null;
}

export type CollectionWorkRow = { collection_id: string; feature_extractor: string; bytes: number | null };

/** Extractors (as stored) and the byte length of one document vector of a namespace's collections, in one query. */
function collectionsWorkQuery(db: D1Database, namespaceId: string, collectionIds: string[]): D1PreparedStatement {
  return db
    .prepare(
      `SELECT c.collection_id, c.feature_extractor,
         (SELECT length(d.vector) FROM documents d WHERE d.namespace_id = c.namespace_id AND d.collection_id = c.collection_id LIMIT 1) AS bytes
       FROM collections c WHERE c.namespace_id = ? AND c.collection_id IN (SELECT value FROM json_each(?))`,
    )
    .bind(namespaceId, JSON.stringify(collectionIds));
}

/**
 * What a batch of object_create tasks reads before it embeds: the namespace's objects among
 * `objectIds` and its collections among `collectionIds`, in one round trip to D1.
 */
export async function workInputRows(
  db: D1Database,
  namespaceId: string,
  objectIds: string[],
  collectionIds: string[],
): Promise<{ objects: Map<string, { content: string; metadata: JsonObject }>; collections: CollectionWorkRow[] }> {
  const [objects, collections] = await db.batch<ObjectForWorkRow | CollectionWorkRow>([
    objectsForWorkQuery(db, namespaceId, objectIds),
    collectionsWorkQuery(db, namespaceId, collectionIds),
  ]);
  return { objects: objectsForWorkOf(objects as { results: ObjectForWorkRow[] }), collections: (collections?.results ?? []) as CollectionWorkRow[] };
}

/** The dimensions of a namespace's collection's documents, or null while it has none. */
export async function documentDimensions(db: D1Database, namespaceId: string, collectionId: string): Promise<number | null> {
  const bytes = await db
    .prepare("SELECT length(vector) AS n FROM documents WHERE namespace_id = ? AND collection_id = ? LIMIT 1")
    .bind(namespaceId, collectionId)
    .first<number>("n");
  return bytes === null ? null : bytes / 4;
}

/** Runs statements in D1 batches of `size`. */
async function inBatches(db: D1Database, statements: D1PreparedStatement[], size = 200): Promise<void> {
  for (let i = 0; i < statements.length; i += size) await db.batch(statements.slice(i, i + size));
}

/** Writes each document's cluster id (labels[i] for ids[i]). */
export async function setClusterIds(db: D1Database, namespaceId: string, ids: string[], labels: ArrayLike<number>): Promise<void> {
  await inBatches(db, ids.map((id, i) => db.prepare("UPDATE documents SET cluster_id = ? WHERE namespace_id = ? AND document_id = ?").bind(labels[i] ?? null, namespaceId, id)));
}

/** Writes each document's taxonomy label (JSON, or null for none). */
export async function setDocumentTaxonomies(db: D1Database, namespaceId: string, labels: { documentId: string; label: string | null }[]): Promise<void> {
  const now = isoNow();
  await inBatches(
    db,
    labels.map((l) => db.prepare("UPDATE documents SET taxonomy = ?, updated_at = ? WHERE namespace_id = ? AND document_id = ?").bind(l.label, now, namespaceId, l.documentId)),
  );
}

/** The ready objects of a collection's source buckets. */
export async function countSourceObjects(db: D1Database, namespaceId: string, collectionId: string): Promise<number> {
  return (
    (await db
      .prepare(
        `SELECT COUNT(*) AS n FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
         WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1 AND o.state = 'ready'`,
      )
      .bind(namespaceId, collectionId)
      .first<number>("n")) ?? 0
  );
}

/** A page of the ready objects of a collection's source buckets, strictly after (created_ms, object_id). */
export async function sourceObjectsPage(
  db: D1Database,
  namespaceId: string,
  collectionId: string,
  after: { ms: number; id: string },
  limit: number,
): Promise<{ object_id: string; content: string; metadata: string; created_ms: number }[]> {
  const { results } = await db
    .prepare(
      `SELECT o.object_id, o.content, o.metadata, o.created_ms FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
       WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1 AND o.state = 'ready' AND (o.created_ms, o.object_id) > (?3, ?4)
       ORDER BY o.created_ms, o.object_id LIMIT ?5`,
    )
    .bind(namespaceId, collectionId, after.ms, after.id, limit)
    .all<{ object_id: string; content: string; metadata: string; created_ms: number }>();
  return results;
}

/**
 * Deletes a collection's documents whose object is gone from its sources; returns how many.
 * Counted from RETURNING: D1's `changes` also counts the rows the delete trigger writes.
 */
export async function removeOrphanDocuments(db: D1Database, namespaceId: string, collectionId: string): Promise<number> {
  const { results } = await db
    .prepare(
      `DELETE FROM documents WHERE namespace_id = ?1 AND collection_id = ?2 AND object_id NOT IN
         (SELECT o.object_id FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
          WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1)
       RETURNING document_id`,
    )
    .bind(namespaceId, collectionId)
    .all<{ document_id: string }>();
  return results.length;
}

/** A model as tuning needs it, or null if the namespace has no such model. */
export async function modelForTuning(
  db: D1Database,
  namespaceId: string,
  modelId: string,
): Promise<{ model_id: string; collection_id: string; label_field: string; version: number } | null> {
  return db
    .prepare("SELECT model_id, collection_id, label_field, version FROM models WHERE namespace_id = ? AND model_id = ?")
    .bind(namespaceId, modelId)
    .first<{ model_id: string; collection_id: string; label_field: string; version: number }>();
}

/** Stores a tuned model's weights and metrics as its next version. */
export async function saveTunedModel(db: D1Database, namespaceId: string, modelId: string, weights: unknown, metrics: unknown): Promise<void> {
  await db
    .prepare("UPDATE models SET version = version + 1, weights = ?, metrics = ?, trained_at = ? WHERE namespace_id = ? AND model_id = ?")
    .bind(JSON.stringify(weights), JSON.stringify(metrics), isoNow(), namespaceId, modelId)
    .run();
}

/** A taxonomy's nodes as stored (JSON), or null if the namespace has no such taxonomy. */
export async function taxonomyNodesJson(db: D1Database, namespaceId: string, taxonomyId: string): Promise<string | null> {
  const row = await db.prepare("SELECT nodes FROM taxonomies WHERE namespace_id = ? AND taxonomy_id = ?").bind(namespaceId, taxonomyId).first<{ nodes: string }>();
  return row?.nodes ?? null;
}

import { type Bucket, type Collection, COLLECTION_COLUMNS, type CollectionRow, type DocumentRow, type ObjectRow, type StoredObject, toCollection, toObject } from "./dataplane";
import { keysetPage, mapPage, newestFirst, type Page, type PageRequest } from "./keyset";

/** The data plane's lists, newest first, each one keyset query through its index (migrations 0004, 0005). */

type TimeAndId = [string, string];
type MillisAndId = [number, string];

const BUCKETS = { select: "bucket_id, bucket_name, description, created_at", from: "buckets" };
const OBJECTS = { select: "object_id, bucket_id, object_key, metadata, created_at, created_ms, task_ids", from: "objects" };
// The alias is the one COLLECTION_COLUMNS's subquery names.
const COLLECTIONS = { select: COLLECTION_COLUMNS, from: "collections c" };
const DOCUMENTS = { select: "document_id, object_id, metadata, vector, cluster_id, taxonomy, created_at, updated_at", from: "documents" };
const TAXONOMIES = { select: "taxonomy_id, taxonomy_name, nodes, created_at", from: "taxonomies" };

export function listBuckets(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Bucket, TimeAndId>> {
  const order = ["created_at", "bucket_id"] as const;
  return keysetPage(db, newestFirst(BUCKETS, { namespace_id: ns }, order, (b: Bucket): TimeAndId => [b.created_at, b.bucket_id]), req);
}

/** A bucket's visible objects (those whose tasks exist), without their content. */
export async function listObjects(db: D1Database, ns: string, bucketId: string, req: PageRequest<MillisAndId>): Promise<Page<StoredObject, MillisAndId>> {
  const visible = { namespace_id: ns, bucket_id: bucketId, state: "ready" };
  const position = (o: ObjectRow & { created_ms: number }): MillisAndId => [o.created_ms, o.object_id];
  return mapPage(await keysetPage(db, newestFirst(OBJECTS, visible, ["created_ms", "object_id"], position), req), toObject);
}

export async function listCollections(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Collection, TimeAndId>> {
  const list = newestFirst(COLLECTIONS, { "c.namespace_id": ns }, ["c.created_at", "c.collection_id"], (r: CollectionRow): TimeAndId => [r.created_at, r.collection_id]);
  return mapPage(await keysetPage(db, list, req), toCollection);
}

/** A collection's documents; the caller has checked that the collection is the namespace's. */
export function listDocuments(db: D1Database, collectionId: string, req: PageRequest<TimeAndId>): Promise<Page<DocumentRow, TimeAndId>> {
  return keysetPage(db, newestFirst(DOCUMENTS, { collection_id: collectionId }, ["created_at", "document_id"], (d: DocumentRow): TimeAndId => [d.created_at, d.document_id]), req);
}

export interface Taxonomy {
  taxonomy_id: string;
  taxonomy_name: string;
  nodes: { label: string; examples: string[] }[];
  created_at: string;
}

type TaxonomyRow = Omit<Taxonomy, "nodes"> & { nodes: string };

/** The nodes were written by this service as JSON. */
export const toTaxonomy = (row: TaxonomyRow): Taxonomy => ({ ...row, nodes: JSON.parse(row.nodes) as Taxonomy["nodes"] });

export async function listTaxonomies(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Taxonomy, TimeAndId>> {
  const byName = newestFirst(TAXONOMIES, { namespace_id: ns }, ["created_at", "taxonomy_id"], (t: TaxonomyRow): TimeAndId => [t.created_at, t.taxonomy_id]);
  return mapPage(await keysetPage(db, byName, req), toTaxonomy);
}

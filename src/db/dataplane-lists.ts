import { type Bucket, type Collection, COLLECTION_COLUMNS, type CollectionRow, type DocumentRow, type ObjectRow, type StoredObject, toCollection, toObject } from "./dataplane";
import { keysetPage, mapPage, type Page, type PageRequest } from "./keyset";

/** The data plane's lists, newest first, each one keyset query through its index (migration 0004). */

type TimeAndId = [string, string];
type MillisAndId = [number, string];

export function listBuckets(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Bucket, TimeAndId>> {
  return keysetPage(db, {
    select: "bucket_id, bucket_name, description, created_at",
    from: "buckets",
    where: ["namespace_id = ?"],
    params: [ns],
    orderBy: ["created_at", "bucket_id"],
    direction: "desc",
    position: (b: Bucket): TimeAndId => [b.created_at, b.bucket_id],
  }, req);
}

/** A bucket's visible objects, without their content. */
export async function listObjects(db: D1Database, ns: string, bucketId: string, req: PageRequest<MillisAndId>): Promise<Page<StoredObject, MillisAndId>> {
  const page = await keysetPage(db, {
    select: "object_id, bucket_id, object_key, metadata, created_at, created_ms, task_ids",
    from: "objects",
    where: ["namespace_id = ?", "bucket_id = ?", "state = 'ready'"],
    params: [ns, bucketId],
    orderBy: ["created_ms", "object_id"],
    direction: "desc",
    position: (o: ObjectRow & { created_ms: number }): MillisAndId => [o.created_ms, o.object_id],
  }, req);
  return mapPage(page, toObject);
}

export async function listCollections(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Collection, TimeAndId>> {
  const page = await keysetPage(db, {
    select: COLLECTION_COLUMNS,
    from: "collections c",
    where: ["c.namespace_id = ?"],
    params: [ns],
    orderBy: ["c.created_at", "c.collection_id"],
    direction: "desc",
    position: (r: CollectionRow): TimeAndId => [r.created_at, r.collection_id],
  }, req);
  return mapPage(page, toCollection);
}

/** A collection's documents; the caller has checked that the collection is the namespace's. */
export function listDocuments(db: D1Database, collectionId: string, req: PageRequest<TimeAndId>): Promise<Page<DocumentRow, TimeAndId>> {
  return keysetPage(db, {
    select: "document_id, object_id, metadata, vector, cluster_id, taxonomy, created_at, updated_at",
    from: "documents",
    where: ["collection_id = ?"],
    params: [collectionId],
    orderBy: ["created_at", "document_id"],
    direction: "desc",
    position: (d: DocumentRow): TimeAndId => [d.created_at, d.document_id],
  }, req);
}

export interface Taxonomy {
  taxonomy_id: string;
  taxonomy_name: string;
  nodes: { label: string; examples: string[] }[];
  created_at: string;
}

type TaxonomyRow = Omit<Taxonomy, "nodes"> & { nodes: string };

export const toTaxonomy = (row: TaxonomyRow): Taxonomy => ({ ...row, nodes: JSON.parse(row.nodes) as Taxonomy["nodes"] });

export async function listTaxonomies(db: D1Database, ns: string, req: PageRequest<TimeAndId>): Promise<Page<Taxonomy, TimeAndId>> {
  const page = await keysetPage(db, {
    select: "taxonomy_id, taxonomy_name, nodes, created_at",
    from: "taxonomies",
    where: ["namespace_id = ?"],
    params: [ns],
    orderBy: ["created_at", "taxonomy_id"],
    direction: "desc",
    position: (t: TaxonomyRow): TimeAndId => [t.created_at, t.taxonomy_id],
  }, req);
  return mapPage(page, toTaxonomy);
}

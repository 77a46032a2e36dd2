import { toBlob } from "../tasks/vector-blob";
import { EmbeddingError, embedTexts } from "../embed/extractor";
import { type FeatureExtractor, parseExtractor } from "../tasks/extractor-config";
import { VectorIndex } from "../embed/vector-index";
import { collectionExtractorJson, documentDimensions, upsertDocumentRows, workInputRows } from "../db/documents";
import type { JsonObject } from "../tasks/model";
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

/**
 * Upserts documents of any collections of a namespace in one D1 batch, several rows a
 * statement; returns their ids in order.
 */
export async function upsertDocumentsOfCollections(db: D1Database, namespaceId: string, documents: (DocumentInput & { collectionId: string })[]): Promise<string[]> {
  return upsertDocumentRows(
    db,
    namespaceId,
    documents.map((d) => ({ collectionId: d.collectionId, objectId: d.objectId, metadata: d.metadata, vector: toBlob(d.vector), codes: VectorIndex.encode(d.vector) })),
  );
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
    if (odd && dimensions !== null) throw dimensionsMismatch(odd.length, dimensions);
    return vectors;
  } catch (err) {
    if (!(err instanceof EmbeddingError)) throw err;
    throw new TaskFailure(err.code, err.message, err.retryable);
  }
}

/** A vector whose length is not that of the collection's documents: a malformed answer, retryable. */
export const dimensionsMismatch = (got: number, want: number): TaskFailure =>
  new TaskFailure("ai_invalid_answer", `the extractor gave ${got} dimensions; the collection's documents have ${want}`, true);

/** A collection's feature extractor, or null if the collection is gone. */
export async function collectionExtractor(db: D1Database, namespaceId: string, collectionId: string): Promise<FeatureExtractor | null> {
  const stored = await collectionExtractorJson(db, namespaceId, collectionId);
  return stored === null ? null : parseExtractor(stored);
}

/**
 * Extractors parsed from their stored JSON, by that JSON: every batch of an import reads the
 * same one or two, and parsing with the schema costs more than the rest of the lookup.
 * Keyed by the stored text, so a changed extractor is a new entry; bounded by clearing.
 */
const parsedExtractors = new Map<string, FeatureExtractor>();
const PARSED_EXTRACTORS_KEPT = 256;

function parseStoredExtractor(stored: string): FeatureExtractor {
  let extractor = parsedExtractors.get(stored);
  if (!extractor) {
    if (parsedExtractors.size >= PARSED_EXTRACTORS_KEPT) parsedExtractors.clear();
    extractor = parseExtractor(stored);
    parsedExtractors.set(stored, extractor);
  }
  return extractor;
}

export type CollectionForWork = { extractor: FeatureExtractor; dimensions: number | null };

/**
 * What a batch of object_create tasks works from, in one round trip to D1: the namespace's
 * objects among `objectIds`, and the extractors and document dimensions of its collections among
 * `collectionIds`. An object or collection gone is absent.
 */
export async function inputsForWork(
  db: D1Database,
  namespaceId: string,
  objectIds: string[],
  collectionIds: string[],
): Promise<{ objects: Map<string, { content: string; metadata: JsonObject }>; collections: Map<string, CollectionForWork> }> {
  const { objects, collections } = await workInputRows(db, namespaceId, objectIds, collectionIds);
  const byId = new Map(collections.map((r) => [r.collection_id, { extractor: parseStoredExtractor(r.feature_extractor), dimensions: r.bytes === null ? null : r.bytes / 4 }]));
  return { objects, collections: byId };
}

/** The dimensions of a namespace's collection's documents, or null while it has none. */
export const collectionDimensions = documentDimensions;

export async function collectionExists(db: D1Database, namespaceId: string, collectionId: string): Promise<boolean> {
  return (await collectionExtractor(db, namespaceId, collectionId)) !== null;
}

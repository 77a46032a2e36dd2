import { documentsByIds, type StoredVector, storedVectorPage, type VectorChange, vectorChanges, vectorPage, vectorsHeader } from "../db/dataplane";

type DocumentRow = Awaited<ReturnType<typeof documentsByIds>>[number];
import type { JsonObject } from "../tasks/model";
import { dot } from "./embedder";
import { ENCODED_HEADER, VectorIndex } from "./vector-index";

/**
 * Search over a collection's documents: exact cosine top-k, served from a per-isolate cache of
 * each collection's vectors (a VectorIndex) instead of reading every vector from D1 per query.
 *
 * Freshness: every change to a document's vector bumps its collection's `vectors_version` in the
 * same transaction (migration 0005's triggers; object_create's upsert stamps its own inserts, 0009). A search reads that version with the collection
 * itself; a cache behind it catches up by reading only the documents and tombstones stamped
 * after its own version, so a write is visible to the next search. A cache too far behind
 * (more than DELTA_LIMIT changes) reloads in full.
 *
 * Memory: entries are evicted least recently used first, by bytes, under BUDGET_BYTES. A
 * collection that would not fit alone is searched by streaming its vectors from D1 (exact, slow).
 */
export const DEFAULT_BUDGET_BYTES = 48 * 1024 * 1024;
/** Changes a cache applies one by one; beyond this a full load is cheaper. */
const DELTA_LIMIT = 2000;
/** Documents a full load or a streamed search reads per D1 query. */
const PAGE = 4000;
/** Candidates whose exact vectors are read per D1 query. */
const RERANK_CHUNK = 256;

interface Entry {
  /** Null while the collection has no documents (dimensions unknown). */
  index: VectorIndex | null;
  version: number;
}

export interface SearchHit {
  document_id: string;
  object_id: string;
  score: number;
  metadata: JsonObject;
}

export class SearchCache {
  /** Map order is recency order: a used entry is moved to the end. */
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry | null>>();
  /** Counters for tests and the benchmark. */
  readonly stats = { fullLoads: 0, catchUps: 0, streamed: 0, evictions: 0, rerankReads: 0 };

  constructor(public budgetBytes = DEFAULT_BUDGET_BYTES) {}

  get bytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.index?.bytes ?? 0;
    return sum;
  }

  has(collectionId: string): boolean {
    return this.entries.has(collectionId);
  }

  drop(collectionId: string): void {
    this.entries.delete(collectionId);
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * The top `limit` documents of a collection by dot product with `query` (a unit vector: the
   * cosine), highest first, ties by document id. `version` is the collection's vectors_version as
   * read at the start of the request: the answer reflects at least that state.
   */
  async search(db: D1Database, collectionId: string, version: number, query: Float32Array, limit: number): Promise<SearchHit[]> {
    const entry = await this.fresh(db, collectionId, version);
    if (!entry) {
      this.stats.streamed++;
      return streamSearch(db, collectionId, query, limit);
    }
    const index = entry.index;
    if (!index || index.count === 0) return [];
    if (query.length !== index.dimensions) throw new DimensionMismatch(query.length, index.dimensions);
    // Exact scores, best candidates first, until no candidate left can beat the k-th exact score:
    // usually one read, even when near-duplicates make the candidate list long. One document of
    // each group of equal vectors is read; its score is every member's.
    const groups = index.candidates(query, limit);
    const read = new Map<string, DocumentRow>();
    let best: { document_id: string; score: number }[] = [];
    for (let i = 0; i < groups.length; i += RERANK_CHUNK) {
      const kth = best.length >= limit ? (best[limit - 1]?.score ?? -Infinity) : -Infinity;
      const chunk = groups.slice(i, i + RERANK_CHUNK).filter((g) => g.upper >= kth);
      if (chunk.length === 0) break;
      this.stats.rerankReads++;
      const rows = await documentsByIds(db, collectionId, chunk.map((g) => g.ids[0] ?? ""));
      for (const row of rows) read.set(row.document_id, row);
      for (const group of chunk) {
        const row = read.get(group.ids[0] ?? "");
        if (!row || row.vector.length !== query.length) continue;
        const score = dot(query, row.vector);
        for (const id of group.ids.slice(0, limit)) best.push({ document_id: id, score });
      }
      best = best.sort(byScoreThenId).slice(0, limit);
    }
    const missing = best.map((b) => b.document_id).filter((id) => !read.has(id));
    for (const row of await documentsByIds(db, collectionId, missing)) read.set(row.document_id, row);
    return best
      .flatMap((b) => {
        const row = read.get(b.document_id);
        return row ? [{ document_id: row.document_id, object_id: row.object_id, metadata: row.metadata, score: dot(query, row.vector) }] : [];
      })
      .sort(byScoreThenId);
  }

  /** The collection's entry, at `version` or later; null if it cannot be cached. */
  private async fresh(db: D1Database, collectionId: string, version: number): Promise<Entry | null> {
    let entry = this.entries.get(collectionId);
    if (entry && entry.version < version) {
      const delta = await vectorChanges(db, collectionId, entry.version, DELTA_LIMIT);
      if (!delta) {
        this.entries.delete(collectionId);
        return null;
      }
      if (delta.complete) {
        this.stats.catchUps++;
        apply(entry, delta.changes, delta.version);
      } else {
        this.entries.delete(collectionId);
        entry = undefined;
      }
    }
    if (!entry) {
      // Concurrent searches of a cold collection share one load.
      let pending = this.loading.get(collectionId);
      if (!pending) {
        pending = this.load(db, collectionId).finally(() => this.loading.delete(collectionId));
        this.loading.set(collectionId, pending);
      }
      const loaded = await pending;
      if (!loaded) return null;
      const current = this.entries.get(collectionId);
      entry = current && current.version >= loaded.version ? current : loaded;
      this.entries.set(collectionId, entry);
      // A load that started before this request read its version may be behind it: catch up.
      if (entry.version < version) return this.fresh(db, collectionId, version);
    }
    this.entries.delete(collectionId);
    this.entries.set(collectionId, entry);
    this.evict(collectionId);
    return this.entries.get(collectionId) ?? null;
  }

  /**
   * Reads every vector of a collection, then the changes made while it read: documents changed
   * meanwhile may be read twice (the later state wins), deleted ones are removed by their tombstone.
   */
  private async load(db: D1Database, collectionId: string): Promise<Entry | null> {
    const header = await vectorsHeader(db, collectionId);
    if (!header) return null;
    const dims = header.dimensions;
    if (header.count > 0) {
      const needed = VectorIndex.bytesFor(dims, Math.ceil(header.count * 1.05));
      if (needed > this.budgetBytes) return null;
      this.makeRoom(needed);
    }
    this.stats.fullLoads++;
    const entry: Entry = { index: header.count > 0 ? new VectorIndex(dims, Math.ceil(header.count * 1.05)) : null, version: header.version };
    let after = "";
    for (;;) {
      const page = await storedVectorPage(db, collectionId, after, PAGE);
      for (const row of page) upsert(entry, row.document_id, row, dims);
      const last = page[page.length - 1];
      if (!last || page.length < PAGE) break;
      after = last.document_id;
    }
    const delta = await vectorChanges(db, collectionId, header.version, Number.MAX_SAFE_INTEGER);
    if (!delta) return null;
    apply(entry, delta.changes, delta.version);
    return entry;
  }

  /** Evicts least recently used entries until `bytes` more fit. */
  private makeRoom(bytes: number): void {
    for (const [id, e] of this.entries) {
      if (this.bytes + bytes <= this.budgetBytes) return;
      if (e.index) {
        this.entries.delete(id);
        this.stats.evictions++;
      }
    }
  }

  /** Evicts least recently used entries, never `keep` unless it alone is over the budget. */
  private evict(keep: string): void {
    for (const [id] of this.entries) {
      if (this.bytes <= this.budgetBytes) return;
      if (id === keep) continue;
      this.entries.delete(id);
      this.stats.evictions++;
    }
    if (this.bytes > this.budgetBytes) {
      this.entries.delete(keep);
      this.stats.evictions++;
    }
  }
}

/** Dimensions of a query and of the collection's documents differ (a changed embedding model). */
export class DimensionMismatch extends Error {
  constructor(
    readonly query: number,
    readonly documents: number,
  ) {
    super(`the query embeds to ${query} dimensions but the collection's documents have ${documents}`);
  }
}

function upsert(entry: Entry, id: string, stored: StoredVector, dimensions?: number): void {
  const dims = dimensions ?? ("vector" in stored ? stored.vector.length : stored.encoded.length - ENCODED_HEADER);
  entry.index ??= new VectorIndex(dims);
  const index = entry.index;
  if (!("vector" in stored ? index.upsert(id, stored.vector) : index.upsertEncoded(id, stored.encoded))) {
    // A vector of other dimensions (written by another model) cannot be compared: leave it out.
    index.remove(id);
    console.warn(`search: document ${id} does not have the index's ${index.dimensions} dimensions; left out`);
  }
}

/** Applies changes in version order, skipping those the entry has already seen. */
function apply(entry: Entry, changes: VectorChange[], version: number): void {
  for (const change of changes) {
    if (change.version <= entry.version) continue;
    if (change.stored) upsert(entry, change.document_id, change.stored);
    else entry.index?.remove(change.document_id);
  }
  entry.version = Math.max(entry.version, version);
}

const byScoreThenId = (a: { score: number; document_id: string }, b: { score: number; document_id: string }): number =>
  b.score - a.score || (a.document_id < b.document_id ? -1 : a.document_id > b.document_id ? 1 : 0);

/** Exact search without a cache: every vector once from D1, the best `limit` kept. */
async function streamSearch(db: D1Database, collectionId: string, query: Float32Array, limit: number): Promise<SearchHit[]> {
  let best: { document_id: string; score: number }[] = [];
  let after = "";
  for (;;) {
    const page = await vectorPage(db, collectionId, after, PAGE);
    for (const row of page) {
      if (row.vector.length !== query.length) continue;
      const hit = { document_id: row.document_id, score: dot(query, row.vector) };
      const worst = best[limit - 1];
      if (best.length < limit || (worst && byScoreThenId(hit, worst) < 0)) {
        best.push(hit);
        best.sort(byScoreThenId);
        best = best.slice(0, limit);
      }
    }
    const last = page[page.length - 1];
    if (!last || page.length < PAGE) break;
    after = last.document_id;
  }
  const rows = await documentsByIds(db, collectionId, best.map((b) => b.document_id));
  return rows.map((r) => ({ document_id: r.document_id, object_id: r.object_id, metadata: r.metadata, score: dot(query, r.vector) })).sort(byScoreThenId);
}

/** This isolate's cache. */
export const searchCache = new SearchCache();

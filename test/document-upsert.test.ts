import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { vectorChanges } from "../src/db/dataplane";
import { type DocumentRowInput, upsertDocumentRows } from "../src/db/documents";
import { embed } from "../src/embed/embedder";
import { VectorIndex } from "../src/embed/vector-index";
import { toBlob } from "../src/tasks/vector-blob";
import { meteredDb } from "./d1-meta";

const NS = "ns_upsert";

async function collection(collectionId: string): Promise<void> {
  await env.DB.prepare("INSERT INTO collections (collection_id, namespace_id, collection_name, feature_extractor, created_at) VALUES (?, ?, ?, ?, ?)")
    .bind(collectionId, NS, collectionId, JSON.stringify({ type: "text_embedding" }), new Date().toISOString())
    .run();
}

const documentOf = (collectionId: string, i: number, text = `text ${i}`): DocumentRowInput => {
  const vector = embed(text);
  return { collectionId, objectId: `obj_${String(i).padStart(4, "0")}`, metadata: { n: i }, vector: toBlob(vector), codes: VectorIndex.encode(vector) };
};

const versionOf = async (collectionId: string) =>
  (await env.DB.prepare("SELECT vectors_version AS v FROM collections WHERE collection_id = ?").bind(collectionId).first<number>("v")) ?? -1;

async function stamps(collectionId: string): Promise<Map<string, number>> {
  const { results } = await env.DB.prepare("SELECT object_id, vector_version FROM documents WHERE collection_id = ?").bind(collectionId).all<{ object_id: string; vector_version: number }>();
  return new Map(results.map((r) => [r.object_id, r.vector_version]));
}

describe("the upsert of object_create's documents (migration 0009)", () => {
  it("stamps new documents past the collection's version and raises it once, writing each row once", async () => {
    await collection("col_upsert_a");
    await collection("col_upsert_b");
    const before = await versionOf("col_upsert_a");
    // Three statements' worth, over two collections.
    const documents = [...Array.from({ length: 25 }, (_, i) => documentOf("col_upsert_a", i)), ...Array.from({ length: 5 }, (_, i) => documentOf("col_upsert_b", i))];
    const { db, rowsWritten } = meteredDb(env.DB);
    const ids = await upsertDocumentRows(db, NS, documents);
    expect(new Set(ids).size).toBe(30);
    // The row and its five indexes, and the collection's version once; the trigger's rewrite of
    // each new row and bump of the collection made nine a document.
    expect(rowsWritten()).toBeLessThanOrEqual(30 * 6 + 2);
    const version = await versionOf("col_upsert_a");
    expect(version).toBeGreaterThan(before);
    const stamped = [...(await stamps("col_upsert_a")).values()];
    expect(stamped.every((stamp) => stamp > before && stamp <= version)).toBe(true);
    const versionB = await versionOf("col_upsert_b");
    expect([...(await stamps("col_upsert_b")).values()].every((stamp) => stamp > 0 && stamp <= versionB)).toBe(true);
    // A cache at the version before the batch catches up on all of it.
    const delta = await vectorChanges(env.DB, "col_upsert_a", before, 100);
    expect(delta).toMatchObject({ version, complete: true });
    expect(delta!.changes.map((c) => c.document_id).sort()).toEqual(ids.slice(0, 25).sort());
  });

  it("bumps nothing for documents written again unchanged, and stamps a changed one past the version", async () => {
    await collection("col_upsert_c");
    const documents = Array.from({ length: 13 }, (_, i) => documentOf("col_upsert_c", i));
    const ids = await upsertDocumentRows(env.DB, NS, documents);
    const version = await versionOf("col_upsert_c");
    const before = await stamps("col_upsert_c");
    expect(await upsertDocumentRows(env.DB, NS, documents)).toEqual(ids);
    expect(await versionOf("col_upsert_c")).toBe(version);
    expect(await stamps("col_upsert_c")).toEqual(before);
    // One changed among unchanged ones and a new one.
    const again = [...documents.slice(0, 3), documentOf("col_upsert_c", 3, "another text"), documentOf("col_upsert_c", 13)];
    const idsAgain = await upsertDocumentRows(env.DB, NS, again);
    expect(idsAgain.slice(0, 4)).toEqual(ids.slice(0, 4));
    const after = await stamps("col_upsert_c");
    const raised = await versionOf("col_upsert_c");
    expect(raised).toBeGreaterThan(version);
    expect(after.get("obj_0003")).toBeGreaterThan(version);
    expect(after.get("obj_0013")).toBeGreaterThan(version);
    expect(Math.max(...after.values())).toBe(raised);
    expect(after.get("obj_0000")).toBe(before.get("obj_0000"));
    const delta = await vectorChanges(env.DB, "col_upsert_c", version, 100);
    expect(delta!.changes.map((c) => c.document_id).sort()).toEqual([idsAgain[3], idsAgain[4]].sort());
  });

  it("still stamps, through the trigger, a document inserted without a stamp", async () => {
    await collection("col_upsert_d");
    await upsertDocumentRows(env.DB, NS, [documentOf("col_upsert_d", 0)]);
    const version = await versionOf("col_upsert_d");
    const vector = embed("raw");
    await env.DB.prepare(
      "INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, created_at, updated_at) VALUES ('doc_raw', ?, 'col_upsert_d', 'obj_raw', '{}', ?, '', '')",
    )
      .bind(NS, toBlob(vector))
      .run();
    expect(await versionOf("col_upsert_d")).toBe(version + 1);
    expect((await stamps("col_upsert_d")).get("obj_raw")).toBe(version + 1);
  });
});

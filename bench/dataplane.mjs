// Part 5 of `npm run bench`: the data plane. Seeds documents straight into the local D1 (vectors
// from the real embedder, bundled for Node) and measures through the running service.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";

/** The embedder of src/embed, bundled so that Node can run it. */
export async function loadEmbedder(state) {
  const out = path.join(state, "embedder.mjs");
  execFileSync(path.resolve("node_modules/.bin/esbuild"), ["src/embed/embedder.ts", "--bundle", "--format=esm", `--outfile=${out}`, "--log-level=warning"]);
  return import(out);
}

const TOPICS = ["football goal striker league match referee", "recipe oven flour butter garlic sauce", "stock market bond yield equity dividend", "river mountain forest trail valley lake"];

export function text(i) {
  const words = TOPICS[i % TOPICS.length].split(" ");
  return Array.from({ length: 12 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(" ") + ` item ${i}`;
}

/** Embeds `n` texts and returns documents/s of the embedder alone. */
export function embedRate(embedder, n = 20_000) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) embedder.embed(text(i));
  return n / ((performance.now() - t0) / 1000);
}

/**
 * SQL that gives `collectionId` `count` documents: 1 000 real vectors, each reused for every
 * 1 000th document (a recursive CTE copies them, so the file stays small).
 */
export function seedDocumentsSql(embedder, { namespaceId, collectionId, count, prefix }) {
  const rows = [];
  for (let i = 0; i < 1000; i++) {
    const v = embedder.embed(text(i));
    rows.push(`(${i}, x'${Buffer.from(v.buffer).toString("hex")}')`);
  }
  return [
    "CREATE TABLE IF NOT EXISTS bench_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL);",
    // D1 takes statements of at most 100 KB: forty vectors a statement.
    ...Array.from({ length: Math.ceil(rows.length / 40) }, (_, i) => `INSERT OR REPLACE INTO bench_vectors (id, vector) VALUES ${rows.slice(i * 40, i * 40 + 40).join(",\n")};`),
    `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, created_at, updated_at)
     WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ${count - 1})
     SELECT 'doc_${prefix}' || printf('%016d', x), '${namespaceId}', '${collectionId}', 'obj_${prefix}' || printf('%016d', x),
       json_object('n', x), (SELECT vector FROM bench_vectors WHERE id = x % 1000), '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'
     FROM c;`,
    `INSERT INTO collections (collection_id, namespace_id, collection_name, feature_extractor, created_at) VALUES ('${collectionId}', '${namespaceId}', '${prefix}', '{"type":"text_embedding"}', '2026-01-01T00:00:00.000Z');`,
  ].join("\n");
}

export function writeSql(state, name, sql) {
  const file = path.join(state, name);
  writeFileSync(file, sql);
  return file;
}

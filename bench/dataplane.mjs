// Part 5 of `npm run bench`: the data plane. Seeds documents straight into the local D1 (vectors
// from the real embedder, bundled for Node) and measures through the running service.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { jsonClient } from "./http-client.mjs";
import { seedNamespace } from "./seed.mjs";

/** The embedder of src/embed and the search index's vector encoding, bundled so that Node can run them. */
export async function loadEmbedder(state) {
  const entry = path.join(state, "embedder-entry.mjs");
  writeFileSync(entry, `export * from ${JSON.stringify(path.resolve("src/embed/embedder.ts"))};\nexport { VectorIndex } from ${JSON.stringify(path.resolve("src/embed/vector-index.ts"))};\n`);
  const out = path.join(state, "embedder.mjs");
  execFileSync(path.resolve("node_modules/.bin/esbuild"), [entry, "--bundle", "--format=esm", `--outfile=${out}`, "--log-level=warning"]);
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
export function seedDocumentsSql(embedder, { namespaceId, collectionId, count, prefix, bucketId, codes = true }) {
  // Each row as the service writes it: the float vector and, since migration 0006, its encoding.
  const rows = [];
  for (let i = 0; i < 1000; i++) {
    const v = embedder.embed(text(i));
    const encoded = codes ? `x'${Buffer.from(embedder.VectorIndex.encode(v)).toString("hex")}'` : "NULL";
    rows.push(`(${i}, x'${Buffer.from(v.buffer).toString("hex")}', ${encoded})`);
  }
  return [
    // The collection first: the version triggers (migration 0005) stamp each document as it lands.
    `INSERT INTO collections (collection_id, namespace_id, collection_name, feature_extractor, created_at) VALUES ('${collectionId}', '${namespaceId}', '${prefix}', '{"type":"text_embedding"}', '2026-01-01T00:00:00.000Z');`,
    // A source bucket, when asked for: objects put there add documents (the search-after-write figure).
    ...(bucketId
      ? [
          `INSERT INTO buckets (bucket_id, namespace_id, bucket_name, created_at) VALUES ('${bucketId}', '${namespaceId}', '${prefix}-source', '2026-01-01T00:00:00.000Z');`,
          `INSERT INTO collection_sources (collection_id, bucket_id, namespace_id) VALUES ('${collectionId}', '${bucketId}', '${namespaceId}');`,
        ]
      : []),
    "CREATE TABLE IF NOT EXISTS bench_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL, codes BLOB);",
    // D1 takes statements of at most 100 KB: thirty vectors a statement.
    ...Array.from({ length: Math.ceil(rows.length / 30) }, (_, i) => `INSERT OR REPLACE INTO bench_vectors (id, vector, codes) VALUES ${rows.slice(i * 30, i * 30 + 30).join(",\n")};`),
    `INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, ${codes ? "codes, " : ""}created_at, updated_at)
     WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < ${count - 1})
     SELECT 'doc_${prefix}' || printf('%016d', x), '${namespaceId}', '${collectionId}', 'obj_${prefix}' || printf('%016d', x),
       json_object('n', x), (SELECT vector FROM bench_vectors WHERE id = x % 1000), ${codes ? "(SELECT codes FROM bench_vectors WHERE id = x % 1000), " : ""}'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'
     FROM c;`,
  ].join("\n");
}

export function writeSql(state, name, sql) {
  const file = path.join(state, name);
  writeFileSync(file, sql);
  return file;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/**
 * Search latency over a collection, one request at a time: the first search (a cold isolate
 * loads the collection's vectors), then `n` warm ones (p50/p99), then, when `bucket` sources the
 * collection, searches each right after a new object's document landed (the cache catches up).
 */
export async function searchLatency(http, token, collectionId, { n = 200, bucket = null, writes = 20 } = {}) {
  const search = async (query) => {
    const t0 = performance.now();
    const res = await http("POST", `/v1/collections/${collectionId}/search`, { token, body: { query, limit: 10 } });
    if (res.status !== 200) throw new Error(`search failed: ${res.status} ${res.text.slice(0, 200)}`);
    return { ms: performance.now() - t0, results: res.json.results };
  };
  const cold = (await search(text(0))).ms;
  const warm = [];
  for (let i = 1; i <= n; i++) warm.push((await search(text(i * 13))).ms);
  warm.sort((a, b) => a - b);
  const out = { cold, p50: percentile(warm, 50), p99: percentile(warm, 99), n };
  if (bucket) {
    const afterWrite = [];
    for (let i = 0; i < writes; i++) {
      const content = `bench write ${i} ${Date.now()} zebra quartz`;
      const made = await http("POST", `/v1/buckets/${bucket}/objects`, { token, body: { content } });
      if (made.status !== 201) throw new Error(`object failed: ${made.status} ${made.text.slice(0, 200)}`);
      for (;;) {
        const task = (await http("GET", `/v1/tasks/${made.json.task_ids[0]}`, { token })).json;
        if (task.status === "completed") break;
        if (task.status === "failed") throw new Error(`object_create failed: ${JSON.stringify(task.error)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const found = await search(content);
      if (found.results[0]?.object_id !== made.json.object_id) throw new Error("a new object was not the first result of the next search");
      afterWrite.push(found.ms);
    }
    afterWrite.sort((a, b) => a - b);
    Object.assign(out, { afterWriteP50: percentile(afterWrite, 50), afterWriteP99: percentile(afterWrite, 99), writes });
  }
  return out;
}

export function formatSearch(label, r) {
  return `  search over ${label}: first ${r.cold.toFixed(0)} ms, then p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${r.n} queries)` +
    (r.afterWriteP50 === undefined ? "" : `; right after a write p50 ${r.afterWriteP50.toFixed(1)} ms, p99 ${r.afterWriteP99.toFixed(1)} ms`);
}

// Standalone, the search figure alone, optionally next to an earlier commit's in the same run:
//   node bench/dataplane.mjs [--compare <git rev>] [--count 100000] [--queries 200] [--before-queries 10]
// Each tree gets its own fresh local state (tmpfs where there is one) and its own `wrangler dev`.
async function standalone() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const count = Number(option("count", 100_000));
  const queries = Number(option("queries", 200));
  const compare = option("compare", null);
  const wrangler = path.resolve("node_modules/.bin/wrangler");
  const root = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  const embedder = await loadEmbedder(mkdtempSync(path.join(root, "edge-tasks-embedder-")));
  const ns = { name: "bench-search", namespaceId: "ns_benchsearchonly00000", apiKey: "sk_bench_search_only" };
  const collectionId = "col_benchsearch000000000";
  const bucketId = "bkt_benchsearch000000000";
  const tinyId = "col_benchsearchtiny00000";

  async function measure(label, cwd, port, n) {
    const state = mkdtempSync(path.join(root, "edge-tasks-search-"));
    const env = { ...process.env, CI: "true" };
    let server = null;
    try {
      execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd, stdio: "ignore", env });
      // A tree from before migration 0006 has no column for encoded vectors.
      const codes = existsSync(path.join(cwd, "migrations/0006_document_codes.sql"));
      const sql = [
        seedNamespace(ns),
        seedDocumentsSql(embedder, { namespaceId: ns.namespaceId, collectionId, count, prefix: "se", bucketId, codes }),
        // One document: the same requests and round trips with nothing to scan, for comparison.
        seedDocumentsSql(embedder, { namespaceId: ns.namespaceId, collectionId: tinyId, count: 1, prefix: "tiny", codes }),
      ].join("\n");
      execFileSync(wrangler, ["d1", "execute", "DB", "--local", "--persist-to", state, "--file", writeSql(state, "documents.sql", sql), "--yes"], { cwd, stdio: "ignore", env });
      const taken = await fetch(`http://127.0.0.1:${port}/health`).then(() => true, () => false);
      if (taken) throw new Error(`port ${port} is already serving; set BENCH_SEARCH_PORT`);
      server = spawn(wrangler, ["dev", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", state, "--log-level", "warn", "--var", "ADMIN_TOKEN:bench"], {
        cwd,
        stdio: ["ignore", "inherit", "inherit"],
        detached: true,
        env,
      });
      const { http, close } = jsonClient(`http://127.0.0.1:${port}`);
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          if ((await http("GET", "/health")).status === 200) break;
        } catch {}
        if (Date.now() > deadline) throw new Error("wrangler dev did not start");
        await new Promise((r) => setTimeout(r, 200));
      }
      // The seeded namespace gets the highest request rate: the figures are of search, not of the limit.
      await http("PATCH", `/v1/namespaces/${ns.name}`, { token: "bench", body: { settings: { requests_per_second: 10_000 } } });
      const result = await searchLatency(http, ns.apiKey, collectionId, { n, bucket: bucketId, writes: n >= 50 ? 20 : 3 });
      console.log(formatSearch(`${count.toLocaleString("en")} documents, ${label}`, result));
      const tiny = await searchLatency(http, ns.apiKey, tinyId, { n: Math.min(n, 100) });
      console.log(formatSearch(`1 document, ${label}`, tiny));
      close();
      return result;
    } finally {
      if (server) {
        try {
          process.kill(-server.pid, "SIGTERM");
        } catch {}
        await new Promise((r) => setTimeout(r, 1000));
      }
      rmSync(state, { recursive: true, force: true });
    }
  }

  // Not run.mjs's port: another benchmark may be running on this machine.
  const port = Number(process.env.BENCH_SEARCH_PORT ?? 9311);
  if (compare) {
    const before = mkdtempSync(path.join(tmpdir(), "edge-tasks-before-"));
    try {
      execFileSync("sh", ["-c", `git archive ${JSON.stringify(compare)} | tar -x -C ${JSON.stringify(before)}`]);
      symlinkSync(path.resolve("node_modules"), path.join(before, "node_modules"));
      await measure(`before (${compare})`, before, port + 20, Number(option("before-queries", 10)));
    } finally {
      rmSync(before, { recursive: true, force: true });
    }
  }
  await measure("now", process.cwd(), port, queries);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await standalone();

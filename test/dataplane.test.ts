import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { normalize } from "../src/embed/embedder";
import { toBlob } from "../src/tasks/vector-blob";
import { SearchCache } from "../src/embed/search";
import { VectorIndex } from "../src/embed/vector-index";
import type { Task } from "../src/tasks/model";
import { call, eventually, tenant, type Tenant, waitForStatus } from "./helpers";
import { seeded } from "./fake-endpoint";
import { bruteForce, randomUnit } from "./vectors";

const TOPICS: Record<string, string[]> = {
  sports: ["football", "goal", "striker", "league", "match", "referee", "stadium", "penalty", "coach", "season", "tennis", "serve"],
  cooking: ["recipe", "oven", "flour", "butter", "simmer", "garlic", "onion", "sauce", "bake", "dough", "pepper", "roast"],
  finance: ["stock", "market", "bond", "yield", "equity", "dividend", "portfolio", "inflation", "rate", "bank", "loan", "fund"],
};
const COMMON = ["the", "a", "today", "new", "report", "people", "about", "with"];

function corpus(perTopic: number, seed: number): { text: string; topic: string }[] {
  const random = seeded(seed);
  const pick = (words: string[]) => words[Math.floor(random() * words.length)] ?? "";
  const out: { text: string; topic: string }[] = [];
  for (let i = 0; i < perTopic; i++) {
    for (const [topic, words] of Object.entries(TOPICS)) {
      const text = Array.from({ length: 10 }, (_, j) => (j % 4 === 3 ? pick(COMMON) : pick(words))).join(" ");
      out.push({ text, topic });
    }
  }
  return out;
}

async function setup(t: Tenant, name: string, collections: string[]) {
  const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: name } })).body;
  const cols = [];
  for (const c of collections) {
    const res = await call("/v1/collections", { token: t.key, body: { collection_name: c, source_bucket_ids: [bucket.bucket_id] } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    cols.push(res.body);
  }
  return { bucket, cols };
}

async function importAll(t: Tenant, bucket: string, docs: { text: string; topic: string }[]) {
  const res = await call(`/v1/buckets/${bucket}/objects/batch`, { token: t.key, body: { objects: docs.map((d, i) => ({ key: `doc-${i}`, content: d.text, metadata: { topic: d.topic } })) } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.task as Task;
}

async function allDone(t: Tenant) {
  await eventually(
    async () => {
      const s = (await call("/v1/tasks/stats", { token: t.key })).body;
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    },
    120_000,
    "every task to finish",
  );
}

describe("objects and their tasks", () => {
  it("creates one object_create task per collection sourcing the bucket, and none without one", async () => {
    const t = await tenant();
    const { bucket, cols } = await setup(t, "photos", ["by-text", "by-topic"]);
    const created = await call(`/v1/buckets/${bucket.bucket_name}/objects`, { token: t.key, body: { key: "a.txt", content: "the striker scored", metadata: { topic: "sports" } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ bucket_id: bucket.bucket_id, key: "a.txt", metadata: { topic: "sports" } });
    expect(created.body.task_ids).toHaveLength(2);
    for (const id of created.body.task_ids) {
      const done = await waitForStatus(t, id, "completed");
      expect(done.task_type).toBe("object_create");
      expect(done.outputs?.document_id).toMatch(/^doc_/);
    }
    for (const col of cols) {
      const docs = (await call(`/v1/collections/${col.collection_id}/documents`, { token: t.key })).body;
      expect(docs.results).toHaveLength(1);
      expect(docs.results[0]).toMatchObject({ object_id: created.body.object_id, metadata: { topic: "sports" }, cluster_id: null, taxonomy: null });
    }
    const lonely = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "lonely" } })).body;
    const alone = await call(`/v1/buckets/${lonely.bucket_id}/objects`, { token: t.key, body: { content: "nobody indexes me" } });
    expect(alone.status).toBe(201);
    expect(alone.body.task_ids).toEqual([]);
    const got = await call(`/v1/buckets/lonely/objects/${alone.body.object_id}`, { token: t.key });
    expect(got.body.content).toBe("nobody indexes me");
  });

  it("refuses bad input in the contract's shape and hides other namespaces' resources", async () => {
    const t = await tenant();
    const other = await tenant();
    const { bucket, cols } = await setup(t, "mine", ["col"]);
    for (const [path, body] of [
      ["/v1/buckets", { bucket_name: "Bad Name" }],
      ["/v1/buckets", { bucket_name: "ok", owner: "x" }],
      [`/v1/buckets/${bucket.bucket_id}/objects`, { content: 1 }],
      [`/v1/buckets/${bucket.bucket_id}/objects`, { content: "x".repeat(256 * 1024 + 1) }],
      [`/v1/buckets/${bucket.bucket_id}/objects`, { content: "x", metadata: { blob: "x".repeat(17 * 1024) } }],
      [`/v1/buckets/${bucket.bucket_id}/objects/batch`, { objects: [] }],
      ["/v1/collections", { collection_name: "c2", source_bucket_ids: ["bkt_nothere"] }],
      [`/v1/collections/${cols[0].collection_id}/cluster`, { k: 1 }],
      [`/v1/collections/${cols[0].collection_id}/search`, { query: "" }],
      ["/v1/taxonomies", { taxonomy_name: "t", nodes: [] }],
      ["/v1/models", { model_name: "m", collection_id: "col_nothere", label_field: "topic" }],
    ] as const) {
      const res = await call(path, { token: t.key, body });
      expect(res.status, `${path} ${JSON.stringify(body).slice(0, 60)}`).toBe(422);
      expect(res.body.error.type).toBe("validation_error");
    }
    expect((await call("/v1/buckets", { token: t.key, body: { bucket_name: "mine" } })).status).toBe(409);
    const again = await call("/v1/collections", { token: t.key, body: { collection_name: "col", source_bucket_ids: [bucket.bucket_id] } });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ type: "conflict", message: "collection col already exists" });
    const taxonomy = { taxonomy_name: "dup", nodes: [{ label: "a", examples: ["x"] }] };
    expect((await call("/v1/taxonomies", { token: t.key, body: taxonomy })).status).toBe(201);
    expect((await call("/v1/taxonomies", { token: t.key, body: taxonomy })).status).toBe(409);
    const model = { model_name: "dup", collection_id: cols[0].collection_id, label_field: "topic" };
    expect((await call("/v1/models", { token: t.key, body: model })).status).toBe(201);
    expect((await call("/v1/models", { token: t.key, body: model })).status).toBe(409);
    for (const path of [`/v1/buckets/${bucket.bucket_id}`, `/v1/collections/${cols[0].collection_id}`, `/v1/collections/${cols[0].collection_id}/documents`]) {
      expect((await call(path, { token: other.key })).status, path).toBe(404);
    }
    expect((await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: other.key, body: { content: "sneaky" } })).status).toBe(404);
  });

  it("pages taxonomies with a cursor, and deleting one removes its labels", async () => {
    const t = await tenant();
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await call("/v1/taxonomies", { token: t.key, body: { taxonomy_name: `tax-${i}`, nodes: [{ label: "a", examples: ["x"] }] } })).body.taxonomy_id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { results: { taxonomy_id: string }[]; pagination: { next_cursor: string | null } } } = await call(`/v1/taxonomies?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      seen.push(...page.body.results.map((x) => x.taxonomy_id));
      cursor = page.body.pagination.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...made].reverse());
    expect((await call(`/v1/taxonomies/${made[0]}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    expect((await call(`/v1/taxonomies/${made[0]}`, { token: t.key })).status).toBe(404);
  });

  it("keeps a bucket while a collection sources it, and deleting a collection cancels its work", async () => {
    const t = await tenant();
    const { bucket, cols } = await setup(t, "kept", ["indexer"]);
    const refused = await call(`/v1/buckets/${bucket.bucket_id}`, { token: t.key, method: "DELETE" });
    expect(refused.status).toBe(409);
    const res = await call(`/v1/collections/${cols[0].collection_id}`, { token: t.key, method: "DELETE" });
    expect(res.status).toBe(200);
    expect((await call(`/v1/buckets/${bucket.bucket_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    expect((await call(`/v1/buckets/${bucket.bucket_id}`, { token: t.key })).status).toBe(404);
  });
});

describe("search, clustering, taxonomy and tuning on topic data", () => {
  it("finds an object's own text first, clusters topics purely, labels them, and learns them", async () => {
    const t = await tenant();
    const { bucket, cols } = await setup(t, "news", ["articles"]);
    const col = cols[0].collection_id;
    const docs = corpus(30, 7);
    const batch = await importAll(t, bucket.bucket_id, docs);
    const imported = await waitForStatus(t, batch.task_id, "completed");
    expect(imported.outputs).toEqual({ objects_created: 90, tasks_created: 90 });
    await allDone(t);
    const children = (await call(`/v1/tasks?parent_task_id=${batch.task_id}&limit=100&include_total=true`, { token: t.key })).body;
    expect(children.pagination.total).toBe(90);

    // Search: a document's own text ranks it first.
    const probe = docs[4];
    const found = (await call(`/v1/collections/${col}/search`, { token: t.key, body: { query: probe?.text, limit: 3 } })).body.results;
    expect(found[0].metadata.topic).toBe(probe?.topic);
    expect(found[0].score).toBeCloseTo(1, 3);

    // Clustering: three topics, three pure clusters, the same for the same seed.
    const cluster = async (seed: number) => {
      const res = await call(`/v1/collections/${col}/cluster`, { token: t.key, body: { k: 3, seed } });
      expect(res.status).toBe(202);
      return waitForStatus(t, res.body.task.task_id, "completed");
    };
    const first = await cluster(42);
    const again = await cluster(42);
    expect(again.outputs).toEqual(first.outputs);
    expect((first.outputs?.cluster_sizes as number[]).reduce((a, b) => a + b, 0)).toBe(90);
    const documents = [];
    let cursor: string | null = null;
    do {
      const page: { body: { results: { metadata: { topic: string }; cluster_id: number }[]; pagination: { next_cursor: string | null } } } = await call(`/v1/collections/${col}/documents?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      documents.push(...page.body.results);
      cursor = page.body.pagination.next_cursor;
    } while (cursor);
    const purity = (() => {
      const byCluster = new Map<number, Map<string, number>>();
      for (const d of documents) {
        const m = byCluster.get(d.cluster_id) ?? new Map<string, number>();
        m.set(d.metadata.topic, (m.get(d.metadata.topic) ?? 0) + 1);
        byCluster.set(d.cluster_id, m);
      }
      let majority = 0;
      for (const m of byCluster.values()) majority += Math.max(...m.values());
      return majority / documents.length;
    })();
    expect(purity).toBeGreaterThanOrEqual(0.9);

    // Taxonomy: each topic a node with a few examples.
    const taxonomy = (await call("/v1/taxonomies", { token: t.key, body: { taxonomy_name: "topics", nodes: Object.entries(TOPICS).map(([label, words]) => ({ label, examples: [words.slice(0, 6).join(" "), words.slice(6).join(" ")] })) } })).body;
    const applied = await call(`/v1/collections/${col}/apply-taxonomy`, { token: t.key, body: { taxonomy_id: taxonomy.taxonomy_id } });
    const labelled = await waitForStatus(t, applied.body.task.task_id, "completed");
    expect(labelled.outputs?.unlabeled).toBe(0);
    const sample = (await call(`/v1/collections/${col}/documents?limit=100`, { token: t.key })).body.results as { metadata: { topic: string }; taxonomy: { label: string } }[];
    const right = sample.filter((d) => d.taxonomy.label === d.metadata.topic).length;
    expect(right / sample.length).toBeGreaterThanOrEqual(0.9);

    // Tuning: a classifier of the topic, with a holdout.
    const model = (await call("/v1/models", { token: t.key, body: { model_name: "topic", collection_id: col, label_field: "topic" } })).body;
    expect((await call(`/v1/models/${model.model_id}/predict`, { token: t.key, body: { text: "goal" } })).status).toBe(409);
    const tune = await call(`/v1/models/${model.model_id}/tune`, { token: t.key, body: { epochs: 30, seed: 1 } });
    const tuned = await waitForStatus(t, tune.body.task.task_id, "completed");
    expect(tuned.outputs?.labels).toEqual(["cooking", "finance", "sports"]);
    expect(tuned.outputs?.holdout_accuracy).toBeGreaterThanOrEqual(0.9);
    expect((tuned.outputs?.loss_curve as number[]).length).toBe(30);
    const predicted = (await call(`/v1/models/${model.model_id}/predict`, { token: t.key, body: { text: "the bank raised the interest rate on the loan" } })).body;
    expect(predicted.label).toBe("finance");
    expect(predicted.version).toBe(1);
  }, 120_000);

  it("stops a cancelled batch import between its slices", async () => {
    const t = await tenant();
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "cancel-me" } })).body;
    const batch = await importAll(t, bucket.bucket_id, corpus(700, 3));
    await eventually(async () => {
      const current = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body as Task;
      return (current.progress.processed ?? 0) > 0 ? true : undefined;
    }, 30_000, "the import to make progress");
    await call(`/v1/tasks/${batch.task_id}/cancel`, { token: t.key, method: "POST" });
    const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ?").bind(bucket.bucket_id).first<number>("n")) ?? 0;
    await new Promise((r) => setTimeout(r, 1500));
    const settled = await count();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await count()).toBe(settled);
    expect(settled).toBeLessThan(2100);
    const final = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body;
    expect(final).toMatchObject({ status: "cancelled", outputs: null });
  }, 60_000);
});

describe("search at scale, from the cache", () => {
  async function seedCollection(count: number, dims: number, seed: number) {
    const random = seeded(seed);
    const collectionId = `col_cache${seed}${Date.now().toString(36)}`;
    await env.DB.prepare("INSERT INTO collections (collection_id, namespace_id, collection_name, feature_extractor, created_at) VALUES (?, 'ns_cache', ?, '{\"type\":\"text_embedding\"}', 'now')")
      .bind(collectionId, collectionId)
      .run();
    const docs = new Map<string, Float32Array>();
    // Half the rows carry the encoded vector the service writes (a full load reads those), half
    // only the floats (rows written before migration 0006): both paths must give exact answers.
    let rows = 0;
    const insert = (id: string, v: Float32Array) =>
      env.DB.prepare("INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, codes, created_at, updated_at) VALUES (?, 'ns_cache', ?, ?, '{}', ?, ?, 'now', 'now')")
        .bind(id, collectionId, `obj_${id}`, toBlob(v), rows++ % 2 ? VectorIndex.encode(v) : null);
    const statements = [];
    for (let i = 0; i < count; i++) {
      const id = `doc_${seed}_${String(i).padStart(6, "0")}`;
      const v = randomUnit(random, dims, 16);
      docs.set(id, v);
      statements.push(insert(id, v));
    }
    for (let i = 0; i < statements.length; i += 500) await env.DB.batch(statements.slice(i, i + 500));
    const version = async () => (await env.DB.prepare("SELECT vectors_version AS v FROM collections WHERE collection_id = ?").bind(collectionId).first<number>("v")) ?? 0;
    return { collectionId, docs, random, insert, version };
  }

  it("answers exactly what brute force does, catches up on writes and deletes, and reloads when far behind", async () => {
    const cache = new SearchCache();
    const { collectionId, docs, random, insert, version } = await seedCollection(3000, 48, 21);
    const check = async () => {
      for (let q = 0; q < 5; q++) {
        const query = randomUnit(random, 48, 10);
        const got = await cache.search(env.DB, collectionId, await version(), query, 10);
        const want = bruteForce(docs, query, 10);
        expect(got.map((h) => h.document_id)).toEqual(want.map((h) => h.id));
        got.forEach((h, i) => expect(h.score).toBeCloseTo(want[i]?.score ?? NaN, 6));
        expect(got[0]?.object_id).toBe(`obj_${got[0]?.document_id}`);
      }
    };
    await check();
    expect(cache.stats).toMatchObject({ fullLoads: 1, catchUps: 0 });

    // A new document equal to the query is first at once; a deleted one is gone at once.
    const query = randomUnit(random, 48, 10);
    await insert("doc_21_new", query).run();
    docs.set("doc_21_new", query);
    expect((await cache.search(env.DB, collectionId, await version(), query, 1))[0]).toMatchObject({ document_id: "doc_21_new" });
    await env.DB.prepare("DELETE FROM documents WHERE document_id = ?").bind("doc_21_new").run();
    docs.delete("doc_21_new");
    expect((await cache.search(env.DB, collectionId, await version(), query, 1))[0]?.document_id).not.toBe("doc_21_new");
    // An updated vector is scored by its new value.
    // (a row with codes: an update of the vector alone must not leave them stale)
    const moved = [...docs.keys()][5] ?? "";
    await env.DB.prepare("UPDATE documents SET vector = ? WHERE document_id = ?").bind(toBlob(query), moved).run();
    expect(await env.DB.prepare("SELECT codes FROM documents WHERE document_id = ?").bind(moved).first("codes")).toBeNull();
    docs.set(moved, query);
    // Writing a vector unchanged, codes and all (a retried object_create, a rebuild), is no change.
    const kept = (await env.DB.prepare("SELECT document_id FROM documents WHERE collection_id = ? AND codes IS NOT NULL AND document_id != ? LIMIT 1").bind(collectionId, moved).first<string>("document_id")) ?? "";
    const versionBefore = await version();
    await env.DB.prepare("UPDATE documents SET vector = vector, codes = codes, updated_at = 'later' WHERE document_id = ?").bind(kept).run();
    expect(await env.DB.prepare("SELECT codes FROM documents WHERE document_id = ?").bind(kept).first("codes")).not.toBeNull();
    expect(await version()).toBe(versionBefore);
    expect((await cache.search(env.DB, collectionId, await version(), query, 1))[0]).toMatchObject({ document_id: moved });
    expect(cache.stats).toMatchObject({ fullLoads: 1, catchUps: 3 });
    // 600 copies of one vector (exact ties: the smallest ids win), then 600 vectors each a hair
    // away from it: more candidates, all within the quantisation bound, than one read takes.
    const dup = randomUnit(random, 48, 10);
    const copies = Array.from({ length: 600 }, (_, i) => `doc_21_dup_${String(599 - i).padStart(3, "0")}`);
    await env.DB.batch(copies.map((id) => insert(id, dup)));
    for (const id of copies) docs.set(id, dup);
    const tied = await cache.search(env.DB, collectionId, await version(), dup, 10);
    expect(tied.map((h) => h.document_id)).toEqual(bruteForce(docs, dup, 10).map((h) => h.id));
    expect(tied.map((h) => h.document_id)).toEqual(copies.slice().sort().slice(0, 10));
    const near = Array.from({ length: 600 }, (_, i) => {
      const v = Float32Array.from(dup);
      v[i % 48] = (v[i % 48] ?? 0) + (random() - 0.5) * 0.002;
      return [`doc_21_near_${i}`, normalize(v)] as const;
    });
    await env.DB.batch(near.map(([id, v]) => insert(id, v)));
    for (const [id, v] of near) docs.set(id, v);
    const nearby = randomUnit(random, 48, 10).map((x, i) => x * 0.05 + (dup[i] ?? 0));
    const query2 = normalize(Float32Array.from(nearby));
    const reads = cache.stats.rerankReads;
    const got = await cache.search(env.DB, collectionId, await version(), query2, 10);
    expect(got.map((h) => h.document_id)).toEqual(bruteForce(docs, query2, 10).map((h) => h.id));
    expect(cache.stats.rerankReads - reads).toBeGreaterThan(1);
    // Cluster ids and labels do not touch vectors: no version bump, nothing to catch up.
    const before = await version();
    await env.DB.prepare("UPDATE documents SET cluster_id = 1, taxonomy = NULL WHERE collection_id = ?").bind(collectionId).run();
    expect(await version()).toBe(before);

    // More changes than a catch-up applies: a full reload, still exact.
    const statements = [];
    for (let i = 0; i < 2100; i++) {
      const id = `doc_21_more_${i}`;
      const v = randomUnit(random, 48, 16);
      docs.set(id, v);
      statements.push(insert(id, v));
    }
    for (let i = 0; i < statements.length; i += 500) await env.DB.batch(statements.slice(i, i + 500));
    await check();
    expect(cache.stats.fullLoads).toBe(2);
  }, 60_000);

  it("evicts the least recently used collection by bytes, and streams one too big to cache", async () => {
    const a = await seedCollection(1000, 32, 31);
    const b = await seedCollection(1000, 32, 32);
    const oneCollection = 1000 * (32 + 108) * 1.1;
    const cache = new SearchCache(oneCollection * 1.5);
    const query = randomUnit(a.random, 32);
    await cache.search(env.DB, a.collectionId, await a.version(), query, 5);
    expect(cache.has(a.collectionId)).toBe(true);
    await cache.search(env.DB, b.collectionId, await b.version(), query, 5);
    expect(cache.has(b.collectionId)).toBe(true);
    expect(cache.has(a.collectionId)).toBe(false);
    expect(cache.stats.evictions).toBe(1);
    expect(cache.bytes).toBeLessThanOrEqual(cache.budgetBytes);

    // Searches of a cold collection at the same time share one load.
    const shared = new SearchCache();
    const together = await Promise.all([1, 2, 3].map(async () => shared.search(env.DB, a.collectionId, await a.version(), query, 5)));
    expect(shared.stats.fullLoads).toBe(1);
    expect(together[1]).toEqual(together[0]);

    const tiny = new SearchCache(oneCollection / 4);
    const streamed = await tiny.search(env.DB, a.collectionId, await a.version(), query, 5);
    expect(tiny.stats).toMatchObject({ streamed: 1, fullLoads: 0 });
    expect(tiny.has(a.collectionId)).toBe(false);
    expect(streamed.map((h) => h.document_id)).toEqual(bruteForce(a.docs, query, 5).map((h) => h.id));
  }, 60_000);

  it("shows a new object to the next search, forgets a deleted one, and never shows another namespace's", async () => {
    const t = await tenant();
    const other = await tenant();
    const mine = await setup(t, "mine", ["searchable"]);
    const theirs = await setup(other, "theirs", ["searchable"]);
    const docs = corpus(10, 5);
    for (const [who, s] of [[t, mine], [other, theirs]] as const) {
      const batch = await importAll(who, s.bucket.bucket_id, docs);
      await waitForStatus(who, batch.task_id, "completed");
      await allDone(who);
    }
    const col = mine.cols[0].collection_id;
    const search = async (query: string) => {
      const res = await call(`/v1/collections/${col}/search`, { token: t.key, body: { query, limit: 100 } });
      expect(res.status).toBe(200);
      return res.body.results as { document_id: string; object_id: string; score: number }[];
    };
    const myObjects = new Set<string>();
    let cursor: string | null = null;
    do {
      const page: { body: { results: { object_id: string }[]; pagination: { next_cursor: string | null } } } = await call(`/v1/buckets/mine/objects?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      for (const o of page.body.results) myObjects.add(o.object_id);
      cursor = page.body.pagination.next_cursor;
    } while (cursor);
    const warm = await search(docs[0]?.text ?? "");
    expect(warm).toHaveLength(30);
    expect(warm.every((r) => myObjects.has(r.object_id))).toBe(true);

    const text = "zebra quartz xylophone vortex";
    const created = await call(`/v1/buckets/mine/objects`, { token: t.key, body: { content: text } });
    await waitForStatus(t, created.body.task_ids[0], "completed");
    const found = await search(text);
    expect(found[0]).toMatchObject({ object_id: created.body.object_id });
    expect(found[0]?.score).toBeCloseTo(1, 5);
    expect(found).toHaveLength(31);

    expect((await call(`/v1/buckets/mine/objects/${created.body.object_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    const after = await search(text);
    expect(after.map((r) => r.object_id)).not.toContain(created.body.object_id);
    expect(after).toHaveLength(30);
    // The other namespace's identical documents, in its own collection, are searched there only.
    const theirsFound = (await call(`/v1/collections/${theirs.cols[0].collection_id}/search`, { token: other.key, body: { query: docs[0]?.text, limit: 100 } })).body.results as { object_id: string }[];
    expect(theirsFound).toHaveLength(30);
    expect(theirsFound.some((r) => myObjects.has(r.object_id))).toBe(false);
    expect((await call(`/v1/collections/${col}/search`, { token: other.key, body: { query: text } })).status).toBe(404);
  }, 60_000);
});

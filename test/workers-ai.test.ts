import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/api/app";
import { type HandlerContext, TaskFailure, Yielded } from "../src/handlers/registry";
import { BUILTIN_HANDLERS } from "../src/handlers/table";
import type { BuiltinInputs } from "../src/tasks/builtin-types";
import type { Task } from "../src/tasks/model";
import { call, eventually, ORIGIN, tenant, type Tenant, waitForStatus } from "./helpers";

/** The fake's RPC surface (test/fake-ai.mjs), beyond what the service uses. */
interface FakeAi {
  run(model: string, inputs: { text: string[] }): Promise<{ data: number[][] }>;
  watch(marker: string): Promise<void>;
  counts(marker: string): Promise<{ calls: number; texts: number; largest: number }>;
  fail(marker: string, times: number, mode?: "error" | "nan" | "short" | "dimensions"): Promise<void>;
  embedding(text: string): Promise<number[]>;
}
const fake = (env as unknown as { AI: FakeAi }).AI;
const FAKE_DIMENSIONS = 16;

let markers = 0;
/** A word no other test's texts contain, to count and fault this test's calls only. */
const marker = () => `zq${Date.now().toString(36)}x${(markers++).toString(36)}`;

async function aiCollection(t: Tenant, name: string, extractor: Record<string, unknown> = { type: "workers_ai" }) {
  const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: name } })).body;
  const res = await call("/v1/collections", { token: t.key, body: { collection_name: name, source_bucket_ids: [bucket.bucket_id], feature_extractor: extractor } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { bucket, collection: res.body };
}

async function put(t: Tenant, bucket: string, content: string, metadata: Record<string, unknown> = {}) {
  const res = await call(`/v1/buckets/${bucket}/objects`, { token: t.key, body: { content, metadata } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { object_id: string; task_ids: string[] };
}

async function allDone(t: Tenant, timeoutMs = 30_000) {
  await eventually(
    async () => {
      const s = (await call("/v1/tasks/stats", { token: t.key })).body;
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    },
    timeoutMs,
    "every task to finish",
  );
}

const unit = (v: number[]) => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};

async function vectors(t: Tenant, collection: string) {
  const docs = (await call(`/v1/collections/${collection}/documents?include_vectors=true&limit=100`, { token: t.key })).body.results;
  return docs as { object_id: string; vector: number[]; metadata: Record<string, unknown> }[];
}

describe("the Workers AI feature extractor", () => {
  it("stores the model's vectors, L2-normalised, and searches with the model", async () => {
    const t = await tenant();
    const m = marker();
    await fake.watch(m);
    const { bucket, collection } = await aiCollection(t, "semantic");
    expect(collection.feature_extractor).toEqual({ type: "workers_ai", model: "@cf/baai/bge-base-en-v1.5" });
    const builtin = await call("/v1/collections", { token: t.key, body: { collection_name: "lexical", source_bucket_ids: [bucket.bucket_id] } });
    const texts = [`${m} football striker goal`, `${m} garlic butter sauce`, `${m} bond yield dividend`];
    const made = [];
    for (const text of texts) made.push(await put(t, bucket.bucket_id, text));
    await allDone(t);
    expect((await fake.counts(m)).texts).toBe(3);

    const docs = await vectors(t, collection.collection_id);
    expect(docs).toHaveLength(3);
    for (const doc of docs) {
      const text = texts[made.findIndex((o) => o.object_id === doc.object_id)] ?? "";
      expect(doc.vector).toHaveLength(FAKE_DIMENSIONS);
      const expected = unit(await fake.embedding(text));
      doc.vector.forEach((v, i) => expect(v).toBeCloseTo(expected[i] ?? NaN, 5));
    }
    // The built-in collection over the same bucket keeps its own 256 dimensions.
    expect((await vectors(t, builtin.body.collection_id))[0]?.vector).toHaveLength(256);

    const before = await fake.counts(m);
    const found = await call(`/v1/collections/${collection.collection_id}/search`, { token: t.key, body: { query: `${m} garlic butter sauce`, limit: 3 } });
    expect(found.status).toBe(200);
    expect(found.body.results[0]).toMatchObject({ object_id: made[1]?.object_id });
    expect(found.body.results[0].score).toBeCloseTo(1, 5);
    expect(await fake.counts(m)).toMatchObject({ calls: before.calls + 1, texts: before.texts + 1 });
  });

  it("re-embeds a collection in calls of at most 100 texts", async () => {
    const t = await tenant();
    const m = marker();
    const { bucket, collection } = await aiCollection(t, "rebuilt", { type: "workers_ai", model: "@cf/baai/bge-small-en-v1.5" });
    const objects = Array.from({ length: 150 }, (_, i) => ({ content: `${m} item ${i}` }));
    const batch = await call(`/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: t.key, body: { objects } });
    expect(batch.status).toBe(202);
    await waitForStatus(t, batch.body.task.task_id, "completed");
    await allDone(t, 60_000);
    await fake.watch(m);
    const rebuild = await call(`/v1/collections/${collection.collection_id}/rebuild`, { token: t.key, body: {} });
    const done = await waitForStatus(t, rebuild.body.task.task_id, "completed");
    expect(done.outputs).toMatchObject({ documents_indexed: 150 });
    expect(await fake.counts(m)).toEqual({ calls: 2, texts: 150, largest: 100 });
  }, 90_000);

  it("retries an attempt whose model call failed, and the retry indexes the object", async () => {
    const t = await tenant();
    const m = marker();
    const { bucket, collection } = await aiCollection(t, "flaky");
    await fake.fail(m, 1, "error");
    const object = await put(t, bucket.bucket_id, `${m} the stadium roared`);
    const task = (await eventually(
      async () => {
        const current = (await call(`/v1/tasks/${object.task_ids[0]}`, { token: t.key })).body as Task;
        return current.status === "completed" ? current : undefined;
      },
      20_000,
      "the retried task to complete",
    )) as Task;
    expect(task.attempt).toBe(2);
    const logs = (await call(`/v1/tasks/${task.task_id}/logs?limit=100`, { token: t.key })).body.results as { message: string }[];
    expect(logs.some((l) => l.message.includes("Capacity temporarily exceeded"))).toBe(true);
    expect((await vectors(t, collection.collection_id))[0]?.vector).toHaveLength(FAKE_DIMENSIONS);
  }, 30_000);

  it("treats a malformed answer (not finite, wrong count, other dimensions) as a retryable failure", async () => {
    const t = await tenant();
    const m = marker();
    const { bucket, collection } = await aiCollection(t, "garbled");
    await fake.fail(m, 1, "nan");
    const first = await put(t, bucket.bucket_id, `${m} one`);
    const task = await eventually(async () => {
      const current = (await call(`/v1/tasks/${first.task_ids[0]}`, { token: t.key })).body as Task;
      return current.status === "completed" ? current : undefined;
    }, 20_000, "the retried task");
    expect(task.attempt).toBe(2);
    // A rebuild whose first call answers one vector short, then the next other dimensions.
    await fake.fail(m, 1, "short");
    const rebuild = await call(`/v1/collections/${collection.collection_id}/rebuild`, { token: t.key, body: {} });
    const rebuilt = await eventually(async () => {
      const current = (await call(`/v1/tasks/${rebuild.body.task.task_id}`, { token: t.key })).body as Task;
      return current.status === "completed" || current.status === "failed" ? current : undefined;
    }, 20_000, "the rebuild");
    expect(rebuilt).toMatchObject({ status: "completed", attempt: 2 });
    await fake.fail(m, 1, "dimensions");
    const second = await put(t, bucket.bucket_id, `${m} two`);
    const again = await eventually(async () => {
      const current = (await call(`/v1/tasks/${second.task_ids[0]}`, { token: t.key })).body as Task;
      return current.status === "completed" ? current : undefined;
    }, 20_000, "the retried task");
    expect(again.attempt).toBe(2);
    for (const doc of await vectors(t, collection.collection_id)) expect(doc.vector).toHaveLength(FAKE_DIMENSIONS);
  }, 60_000);

  it("embeds taxonomy examples and texts to classify with the collection's model", async () => {
    const t = await tenant();
    const m = marker();
    const { bucket, collection } = await aiCollection(t, "labelled");
    const topics = { sports: ["football", "striker", "goal", "league"], cooking: ["garlic", "butter", "oven", "flour"] };
    const objects = Array.from({ length: 40 }, (_, i) => {
      const [topic, words] = Object.entries(topics)[i % 2] ?? ["", []];
      return { content: words.join(" "), metadata: { topic } };
    });
    const batch = await call(`/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: t.key, body: { objects } });
    await waitForStatus(t, batch.body.task.task_id, "completed");
    await allDone(t);
    await fake.watch(m);
    const nodes = Object.entries(topics).map(([label, words]) => ({ label, examples: [`${m} ${words.join(" ")}`, `${m} ${words.slice(0, 2).join(" ")}`] }));
    const taxonomy = (await call("/v1/taxonomies", { token: t.key, body: { taxonomy_name: "topics", nodes } })).body;
    const applied = await call(`/v1/collections/${collection.collection_id}/apply-taxonomy`, { token: t.key, body: { taxonomy_id: taxonomy.taxonomy_id } });
    const labelled = await waitForStatus(t, applied.body.task.task_id, "completed");
    expect(labelled.outputs).toMatchObject({ label_counts: { sports: 20, cooking: 20 }, unlabeled: 0 });
    expect(await fake.counts(m)).toEqual({ calls: 1, texts: 4, largest: 4 });

    const model = (await call("/v1/models", { token: t.key, body: { model_name: "topic", collection_id: collection.collection_id, label_field: "topic" } })).body;
    const tune = await call(`/v1/models/${model.model_id}/tune`, { token: t.key, body: { epochs: 30, seed: 1 } });
    await waitForStatus(t, tune.body.task.task_id, "completed");
    const predicted = await call(`/v1/models/${model.model_id}/predict`, { token: t.key, body: { text: `${m} garlic butter oven flour` } });
    expect(predicted.status).toBe(200);
    expect(predicted.body.label).toBe("cooking");
    expect((await fake.counts(m)).calls).toBe(2);
  }, 60_000);

  it("refuses a Workers AI collection without the binding, and unknown models, in the contract's shape", async () => {
    const t = await tenant();
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "nobinding" } })).body;
    const unknown = await call("/v1/collections", { token: t.key, body: { collection_name: "x", source_bucket_ids: [bucket.bucket_id], feature_extractor: { type: "workers_ai", model: "@cf/meta/llama-3-8b-instruct" } } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.type).toBe("validation_error");

    // The same Worker, run with an env that has no AI binding.
    const app = createApp();
    const unbound = { ...env, AI: undefined } as unknown as Env;
    const send = async (path: string, body: unknown) => {
      const ctx = createExecutionContext();
      const res = await app.fetch(new Request(`${ORIGIN}${path}`, { method: "POST", headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" }, body: JSON.stringify(body) }), unbound, ctx);
      await waitOnExecutionContext(ctx);
      return { status: res.status, body: (await res.json()) as { error: { type: string; message: string; details: unknown } } };
    };
    const refused = await send("/v1/collections", { collection_name: "semantic", source_bucket_ids: [bucket.bucket_id], feature_extractor: { type: "workers_ai" } });
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatchObject({ type: "validation_error", details: { field: "feature_extractor" } });
    expect(refused.body.error.message).toContain("AI binding");
    expect((await send("/v1/collections", { collection_name: "plain", source_bucket_ids: [bucket.bucket_id] })).status).toBe(201);

    // A collection made while the binding existed cannot be searched once it is gone,
    const { bucket: orphanBucket, collection } = await aiCollection(t, "orphaned");
    const search = await send(`/v1/collections/${collection.collection_id}/search`, { query: "anything" });
    expect(search.status).toBe(500);
    expect(search.body.error.message).toContain("no AI binding");
    // and its object_create fails for good: retrying cannot bring the binding back.
    const object = await put(t, orphanBucket.bucket_id, "an orphan");
    const done = await waitForStatus(t, object.task_ids[0] ?? "", "completed");
    const handler = BUILTIN_HANDLERS.object_create;
    const ctx: HandlerContext<BuiltinInputs["object_create"]> = {
      task: done,
      inputs: handler.inputs.parse(done.inputs),
      attempt: 1,
      env: unbound,
      origin: ORIGIN,
      signal: new AbortController().signal,
      progress: async () => undefined,
      log: async () => undefined,
      checkpoint: null,
      shouldYield: () => false,
      yield: (state) => new Yielded(state),
    };
    const failure = await handler.run(ctx).then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(TaskFailure);
    expect(failure).toMatchObject({ code: "ai_unbound", retryable: false });
  });
});

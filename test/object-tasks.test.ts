import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createObject, sweepPendingObjects } from "../src/dataplane/objects";
import type { NamespaceDO } from "../src/namespace/do";
import { call, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { query } from "./inspect";

// Moved from dataplane-scale.test.ts: these are not scale tests and run with the other
// integration tests.

async function setup(t: Tenant, name: string, collections: string[]) {
  const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: name } })).body;
  const cols = [];
  for (const c of collections) cols.push((await call("/v1/collections", { token: t.key, body: { collection_name: c, source_bucket_ids: [bucket.bucket_id] } })).body);
  return { bucket, cols };
}

/** Sweeps now whatever pending object earlier tests left, so that the next sweep counts only this test's. */
const sweepLeftovers = () => sweepPendingObjects(env, Date.now() + 10 * 60_000);

const count = async (sql: string, ...params: unknown[]) => (await env.DB.prepare(sql).bind(...params).first<number>("n")) ?? 0;

/** A D1 whose statements matching `failing` throw, as if D1 failed at that step. */
function failingDb(failing: RegExp): D1Database {
  const real = env.DB;
  return {
    ...real,
    prepare(sql: string) {
      const statement = real.prepare(sql);
      if (!failing.test(sql)) return statement;
      const boom = async () => {
        throw new Error("D1 unavailable (injected)");
      };
      return { ...statement, bind: () => ({ ...statement, run: boom, all: boom, first: boom, raw: boom }), run: boom, all: boom, first: boom, raw: boom } as unknown as D1PreparedStatement;
    },
    batch: real.batch.bind(real),
  } as D1Database;
}

describe("an object and its tasks never drift apart", () => {
  it("fails cleanly when the object cannot be stored: no task", async () => {
    const t = await tenant();
    const { bucket } = await setup(t, "fail-store", ["c"]);
    await expect(createObject({ ...env, DB: failingDb(/INSERT OR IGNORE INTO objects/) }, t.namespaceId, "http://x", bucket.bucket_id, { content: "x" })).rejects.toThrow();
    expect(await query(t, "SELECT task_id FROM tasks")).toHaveLength(0);
  });

  it("hides an object whose tasks could not be made, and the sweep removes it", async () => {
    await sweepLeftovers();
    const t = await tenant();
    const { bucket } = await setup(t, "fail-tasks", ["c"]);
    await runInDurableObject(stub(t), (i: NamespaceDO) => {
      (i as unknown as { createTasks: () => Promise<never> }).createTasks = async () => {
        throw new Error("Durable Object unavailable (injected)");
      };
    });
    const res = await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key, body: { content: "orphan" } });
    expect(res.status).toBe(500);
    expect((await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key })).body.results).toHaveLength(0);
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ? AND state = 'pending'", bucket.bucket_id)).toBe(1);
    const swept = await sweepPendingObjects(env, Date.now() + 10 * 60_000);
    expect(swept).toEqual({ shown: 0, removed: 1 });
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(0);
    expect(await query(t, "SELECT task_id FROM tasks")).toHaveLength(0);
  });

  it("shows an object whose tasks were made though the request died before showing it", async () => {
    await sweepLeftovers();
    const t = await tenant();
    const { bucket } = await setup(t, "fail-show", ["c1", "c2"]);
    await expect(
      createObject({ ...env, DB: failingDb(/UPDATE objects SET state = 'ready'/) }, t.namespaceId, "http://x", bucket.bucket_id, { content: "half made" }),
    ).rejects.toThrow();
    const pending = await env.DB.prepare("SELECT object_id FROM objects WHERE bucket_id = ? AND state = 'pending'").bind(bucket.bucket_id).first<{ object_id: string }>();
    expect(pending).not.toBeNull();
    expect(await query(t, "SELECT task_id FROM tasks")).toHaveLength(2);
    const made = (await query<{ task_id: string }>(t, "SELECT task_id FROM tasks")).map((row) => row.task_id);
    const swept = await sweepPendingObjects(env, Date.now() + 10 * 60_000);
    expect(swept).toEqual({ shown: 1, removed: 0 });
    const shown = (await call(`/v1/buckets/${bucket.bucket_id}/objects/${pending?.object_id}`, { token: t.key })).body;
    expect([...shown.task_ids].sort()).toEqual(made.sort());
  });
});

describe("rebuild and deletion", () => {
  it("re-embeds every object and drops documents whose object is gone", async () => {
    const t = await tenant();
    const { bucket, cols } = await setup(t, "rebuild", ["idx"]);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key, body: { content: `text number ${i}` } })).body);
    for (const o of ids) for (const task of o.task_ids) await waitForStatus(t, task, "completed");
    const gone = ids[0];
    expect((await call(`/v1/buckets/${bucket.bucket_id}/objects/${gone.object_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    expect(await count("SELECT COUNT(*) AS n FROM documents WHERE object_id = ?", gone.object_id)).toBe(0);
    // A document left behind (as after a crash) is removed by the rebuild.
    await env.DB.prepare("INSERT INTO documents (document_id, namespace_id, collection_id, object_id, metadata, vector, created_at, updated_at) VALUES ('doc_stray', ?, ?, 'obj_gone', '{}', x'00', 'x', 'x')")
      .bind(t.namespaceId, cols[0].collection_id)
      .run();
    const res = await call(`/v1/collections/${cols[0].collection_id}/rebuild`, { token: t.key, body: {} });
    const done = await waitForStatus(t, res.body.task.task_id, "completed");
    expect(done.outputs).toEqual({ documents_indexed: 4, documents_removed: 1 });
  });
});

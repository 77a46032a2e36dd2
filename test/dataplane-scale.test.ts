import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createObject, sweepPendingObjects } from "../src/dataplane/objects";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { call, eventually, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance, allEvents, query } from "./inspect";

async function setup(t: Tenant, name: string, collections: string[]) {
  const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: name } })).body;
  const cols = [];
  for (const c of collections) cols.push((await call("/v1/collections", { token: t.key, body: { collection_name: c, source_bucket_ids: [bucket.bucket_id] } })).body);
  return { bucket, cols };
}

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
    expect(swept.removed).toBeGreaterThanOrEqual(1);
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(0);
    expect(await query(t, "SELECT task_id FROM tasks")).toHaveLength(0);
  });

  it("shows an object whose tasks were made though the request died before showing it", async () => {
    const t = await tenant();
    const { bucket } = await setup(t, "fail-show", ["c1", "c2"]);
    await expect(
      createObject({ ...env, DB: failingDb(/UPDATE objects SET state = 'ready'/) }, t.namespaceId, "http://x", bucket.bucket_id, { content: "half made" }),
    ).rejects.toThrow();
    const pending = await env.DB.prepare("SELECT object_id FROM objects WHERE bucket_id = ? AND state = 'pending'").bind(bucket.bucket_id).first<{ object_id: string }>();
    expect(pending).not.toBeNull();
    expect(await query(t, "SELECT task_id FROM tasks")).toHaveLength(2);
    const swept = await sweepPendingObjects(env, Date.now() + 10 * 60_000);
    expect(swept.shown).toBeGreaterThanOrEqual(1);
    const shown = (await call(`/v1/buckets/${bucket.bucket_id}/objects/${pending?.object_id}`, { token: t.key })).body;
    expect(shown.task_ids).toHaveLength(2);
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

describe("batch import at scale", () => {
  it("imports 10 000 objects into a bucket of two collections: 20 000 children, all completed under the limit", async () => {
    const t = await tenant();
    const { bucket, cols } = await setup(t, "bulk", ["first", "second"]);
    const objects = Array.from({ length: 10_000 }, (_, i) => ({ content: `object ${i} about topic ${i % 7} and word w${i % 101}`, metadata: { n: i } }));
    const res = await call(`/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: t.key, body: { objects } });
    expect(res.status).toBe(202);
    const batch = res.body.task as Task;
    const progress = new Set<number>();
    await eventually(
      async () => {
        const current = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body as Task;
        if (current.progress.processed !== null) progress.add(current.progress.processed);
        const s = (await call("/v1/tasks/stats", { token: t.key })).body;
        return current.status === "completed" && s.created + s.queued + s.processing === 0 ? current : undefined;
      },
      600_000,
      "the import and its children",
    );
    const done = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body as Task;
    expect(done.outputs).toEqual({ objects_created: 10_000, tasks_created: 20_000 });
    expect(progress.size).toBeGreaterThan(2);
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ? AND state = 'ready'", bucket.bucket_id)).toBe(10_000);
    for (const col of cols) expect(await count("SELECT COUNT(*) AS n FROM documents WHERE collection_id = ?", col.collection_id)).toBe(10_000);
    const children = (await call(`/v1/tasks?parent_task_id=${batch.task_id}&status=completed&limit=1&include_total=true`, { token: t.key })).body;
    expect(children.pagination.total).toBe(20_000);
    // Never more than 100 admitted at once, replayed from the event log.
    let active = 0;
    let peak = 0;
    const status = new Map<string, string>();
    for (const e of await allEvents(t)) {
      if (!e.event_type.startsWith("task.") || e.event_type === "task.progress") continue;
      const holds = (s?: string) => s === "queued" || s === "processing";
      const next = e.event_type.slice(5);
      active += (holds(next) ? 1 : 0) - (holds(status.get(e.task_id)) ? 1 : 0);
      status.set(e.task_id, next);
      peak = Math.max(peak, active);
    }
    expect(peak).toBeLessThanOrEqual(100);
  }, 900_000);

  it("resumes an import whose attempt died from its checkpoint, without duplicating an object", async () => {
    const t = await tenant();
    const { bucket } = await setup(t, "resume", ["only"]);
    const objects = Array.from({ length: 1500 }, (_, i) => ({ content: `resumable ${i}` }));
    const batch = (await call(`/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: t.key, body: { objects } })).body.task as Task;
    await eventually(async () => {
      const rows = await query<{ checkpoint: string | null }>(t, "SELECT checkpoint FROM tasks WHERE task_id = ?", batch.task_id);
      return rows[0]?.checkpoint ? true : undefined;
    }, 60_000, "a checkpoint");
    // The attempt's consumer is lost: its lease runs out and attempt 2 takes over from the checkpoint.
    await advance(t, 61_000);
    await advance(t, 10_000);
    const done = await eventually(async () => {
      const current = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body as Task;
      return current.status === "completed" ? current : undefined;
    }, 300_000, "the resumed import");
    await eventually(async () => {
      const s = (await call("/v1/tasks/stats", { token: t.key })).body;
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    }, 300_000);
    expect(done.attempt).toBeGreaterThanOrEqual(2);
    expect(done.outputs?.objects_created).toBe(1500);
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(1500);
    expect(await count("SELECT COUNT(DISTINCT content) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(1500);
    const children = (await call(`/v1/tasks?parent_task_id=${batch.task_id}&limit=1&include_total=true`, { token: t.key })).body;
    expect(children.pagination.total).toBe(1500);
  }, 600_000);
});

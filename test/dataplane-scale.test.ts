import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Task } from "../src/tasks/model";
import { call, eventually, tenant, type Tenant } from "./helpers";
import { allEvents } from "./inspect";

async function setup(t: Tenant, name: string, collections: string[]) {
  const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: name } })).body;
  const cols = [];
  for (const c of collections) cols.push((await call("/v1/collections", { token: t.key, body: { collection_name: c, source_bucket_ids: [bucket.bucket_id] } })).body);
  return { bucket, cols };
}

const count = async (sql: string, ...params: unknown[]) => (await env.DB.prepare(sql).bind(...params).first<number>("n")) ?? 0;

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
});

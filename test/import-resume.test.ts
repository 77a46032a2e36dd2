import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { call, eventually, stub, tenant, type Tenant } from "./helpers";
import { advance } from "./inspect";

const count = async (sql: string, ...params: unknown[]) => (await env.DB.prepare(sql).bind(...params).first<number>("n")) ?? 0;

/**
 * Loses the consumer of a checkpointed attempt: once the attempt has yielded and its next slice
 * waits for a consumer, that slice is never claimed (as if its message and consumer were gone).
 * Checked and done in one step of the object, so no slice can be claimed in between. Undefined
 * while the attempt has not yielded yet, or a consumer already runs its next slice.
 */
const loseNextSlice = (t: Tenant, taskId: string) =>
  runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
    const [row] = state.storage.sql.exec<{ checkpoint: string | null; continuation: number }>("SELECT checkpoint, continuation FROM tasks WHERE task_id = ?", taskId).toArray();
    if (!row?.checkpoint || row.continuation === 0) return undefined;
    state.storage.sql.exec("UPDATE tasks SET continuation = -1 WHERE task_id = ?", taskId);
    return JSON.parse(row.checkpoint) as { state: { next: number } };
  });

describe("batch import resume", () => {
  // This project binds HANDLER_SLICE_MS=1 (vitest.config.ts): the import yields after each group
  // of objects it makes, so it checkpoints at least twice whatever the machine's speed.
  it("resumes an import whose attempt died from its checkpoint, without duplicating an object", async () => {
    const t = await tenant();
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "resume" } })).body;
    await call("/v1/collections", { token: t.key, body: { collection_name: "only", source_bucket_ids: [bucket.bucket_id] } });
    const objects = Array.from({ length: 1500 }, (_, i) => ({ content: `resumable ${i}` }));
    const created = await call(`/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: t.key, body: { objects } });
    expect(created.status).toBe(202);
    const batch = created.body.task as Task;
    const saved = await eventually(() => loseNextSlice(t, batch.task_id), 60_000, "a checkpoint");
    expect(saved.state.next).toBeGreaterThan(0);
    expect(saved.state.next).toBeLessThan(1500);
    // Nothing renews the lease any more: it runs out and attempt 2 takes over from the checkpoint.
    await advance(t, 61_000);
    await advance(t, 10_000);
    const done = await eventually(async () => {
      const current = (await call(`/v1/tasks/${batch.task_id}`, { token: t.key })).body as Task;
      return current.status === "completed" ? current : undefined;
    }, 120_000, "the resumed import");
    await eventually(async () => {
      const s = (await call("/v1/tasks/stats", { token: t.key })).body;
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    }, 120_000, "the imported objects' tasks");
    expect(done.attempt).toBe(2);
    expect(done.outputs).toEqual({ objects_created: 1500, tasks_created: 1500 });
    expect(await count("SELECT COUNT(*) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(1500);
    expect(await count("SELECT COUNT(DISTINCT content) AS n FROM objects WHERE bucket_id = ?", bucket.bucket_id)).toBe(1500);
    const children = (await call(`/v1/tasks?parent_task_id=${batch.task_id}&limit=1&include_total=true`, { token: t.key })).body;
    expect(children.pagination.total).toBe(1500);
  }, 300_000);
});

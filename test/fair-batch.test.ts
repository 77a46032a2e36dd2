import { describe, expect, it } from "vitest";
import type { Task } from "../src/tasks/model";
import { call, getTask, tenant, type Tenant } from "./helpers";
import { advance, query } from "./inspect";

/** A pulled type: its tasks stay queued until a worker leases them, so nothing runs under the test. */
async function pulled(t: Tenant, taskType: string) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

const batch = (t: Tenant, tasks: unknown[]) =>
  call<{ tasks: Task[] } & { error: { type: string; details: { index?: number; field?: string } } }>("/v1/tasks/batch", { token: t.key, body: { tasks } });

const stats = async (t: Tenant) => (await call<{ created: number; queued: number; processing: number }>("/v1/tasks/stats", { token: t.key })).body;

describe("POST /v1/tasks/batch with issue 14's fields", () => {
  it("applies concurrency_key, max_concurrent_per_key and a delayed start to batch items as to single creates", async () => {
    const t = await tenant({ max_concurrent_tasks: 10, max_concurrent_per_key: 1 });
    await pulled(t, "fb_keyed");
    const res = await batch(t, [
      { task_type: "fb_keyed", concurrency_key: "a" },
      { task_type: "fb_keyed", concurrency_key: "a" },
      { task_type: "fb_keyed", concurrency_key: "b" },
      { task_type: "fb_keyed", delay_seconds: 60 },
    ]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const [a1, a2, b, later] = res.body.tasks;
    expect(res.body.tasks.map((task) => task.concurrency_key)).toEqual(["a", "a", "b", null]);
    expect(res.body.tasks.map((task) => task.status)).toEqual(["queued", "created", "queued", "created"]);
    // The key's one slot is taken: a's second task waits for its key, not for the namespace.
    expect((await getTask(t, a2?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_key", position: 1 });
    expect(later?.run_at).not.toBeNull();
    expect((await getTask(t, later?.task_id ?? "")).waiting).toMatchObject({ reason: "scheduled", position: 1 });
    expect([a1?.task_id, b?.task_id].every(Boolean)).toBe(true);
    await advance(t, 61_000);
    expect((await getTask(t, later?.task_id ?? "")).status).toBe("queued");
  });

  it("puts a batch's waiting tasks in the fair queue as single creates would: each group's count, new groups in the order of their first task", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    await pulled(t, "fb_groups");
    expect((await batch(t, [{ task_type: "fb_groups" }])).status).toBe(201);
    const keys = ["b", "a", "b", "c", "a", "b"];
    const res = await batch(t, [...keys.map((key) => ({ task_type: "fb_groups", concurrency_key: key })), { task_type: "fb_groups", concurrency_key: "a", priority: 7 }]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const groups = await query<{ key: string; priority: number; waiting: number }>(t, "SELECT key, priority, waiting FROM fair_queue ORDER BY turn");
    expect(groups).toEqual([
      { key: "b", priority: 5, waiting: 3 },
      { key: "a", priority: 5, waiting: 2 },
      { key: "c", priority: 5, waiting: 1 },
      { key: "a", priority: 7, waiting: 1 },
    ]);
    const read = await Promise.all(res.body.tasks.map((task) => getTask(t, task.task_id)));
    expect(res.body.tasks.map((task) => task.waiting)).toEqual(read.map((task) => task.waiting));
    expect(new Set(read.map((task) => task.waiting?.position)).size).toBe(7);
  });

  it("refuses a batch whose item has a bad schedule, naming its index, and creates none", async () => {
    const t = await tenant();
    await pulled(t, "fb_bad");
    const good = { task_type: "fb_bad" };
    const cases: unknown[][] = [
      [good, { task_type: "fb_bad", run_at: new Date(Date.now() + 31 * 86400_000).toISOString() }],
      [good, { task_type: "fb_bad", run_at: new Date().toISOString(), delay_seconds: 5 }],
    ];
    for (const items of cases) {
      const res = await batch(t, items);
      expect(res.status, JSON.stringify(res.body)).toBe(422);
      expect(res.body.error.details, JSON.stringify(res.body)).toMatchObject({ index: 1, field: "run_at" });
    }
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0, processing: 0 });
  });
});

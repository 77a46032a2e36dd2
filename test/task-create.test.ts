import { describe, expect, it } from "vitest";
import type { Task } from "../src/tasks/model";
import { call, createTask, getTask, tenant, type Tenant } from "./helpers";
import { query, taskEvents } from "./inspect";

/** A pulled type: its tasks stay queued until a worker leases them, so nothing runs under the test. */
async function pulled(t: Tenant, taskType: string) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

const view = (task: Task) => ({ status: task.status, queue_position: task.queue_position, waiting: task.waiting && { reason: task.waiting.reason, position: task.waiting.position } });

// A single create is a bulk step of one answered as a batch of one (no count over the backlog):
// its answer must still be what a read gives, for every priority, key and schedule.
describe("POST /v1/tasks (one task)", () => {
  it("answers with the queue position and waiting a read gives, and stores its position at creation in task.created", async () => {
    const t = await tenant({ max_concurrent_tasks: 2, max_concurrent_per_key: 1 });
    await pulled(t, "tc_view");
    const items: Record<string, unknown>[] = [
      { priority: 5, concurrency_key: "a" }, { priority: 5, concurrency_key: "a" }, { priority: 9, concurrency_key: "b" },
      { priority: 5 }, { priority: 3, concurrency_key: "b" }, { priority: 9 }, { priority: 5, concurrency_key: "c" },
      { priority: 5, concurrency_key: "a", delay_seconds: 600 }, { priority: 1 }, { priority: 9, concurrency_key: "b" }, { priority: 5 },
    ];
    const made: Task[] = [];
    for (const [index, item] of items.entries()) {
      const task = await createTask(t, { task_type: "tc_view", ...item });
      expect(view(task), `item ${index}`).toEqual(view(await getTask(t, task.task_id)));
      const created = (await taskEvents(t, task.task_id)).find((e) => e.event_type === "task.created");
      const body = JSON.parse(String(created?.data)) as { data: { task: Task } };
      // At its creation a task is the newest: behind every created task of its priority or higher.
      const ahead = made.filter((other) => other.status === "created" && other.priority >= task.priority).length;
      expect(body.data.task.queue_position, `item ${index}`).toBe(ahead + 1);
      made.push(task);
    }
    expect(made.filter((task) => task.status !== "created").length).toBe(2);
  });

  it("takes each seq from the namespace's counter and leaves the counter at the last one", async () => {
    const t = await tenant();
    await pulled(t, "tc_seq");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await createTask(t, { task_type: "tc_seq" })).task_id);
    const rows = await query<{ task_id: string; seq: number }>(t, "SELECT task_id, seq FROM tasks ORDER BY seq");
    expect(rows.map((r) => r.task_id)).toEqual(ids);
    const first = rows[0]?.seq ?? 0;
    expect(rows.map((r) => r.seq)).toEqual(ids.map((_, i) => first + i));
    expect(await query(t, "SELECT CAST(value AS INTEGER) AS n FROM meta WHERE key = 'task_seq'")).toEqual([{ n: first + 3 }]);
  });

  it("stores a task a free slot waits for as queued in one write: created then queued, never in the fair queue", async () => {
    const t = await tenant({ max_concurrent_tasks: 2, max_concurrent_per_key: 1 });
    await pulled(t, "tc_fast");
    const first = await createTask(t, { task_type: "tc_fast", concurrency_key: "k" });
    expect(first.status).toBe("queued");
    const events = await taskEvents(t, first.task_id);
    expect(events.map((e) => e.event_type)).toEqual(["task.created", "task.queued"]);
    const [created, queued] = events.map((e) => (JSON.parse(String(e.data)) as { data: { task: Task } }).data.task);
    expect([created?.status, created?.queue_position, queued?.status, queued?.queue_position]).toEqual(["created", 1, "queued", null]);
    expect(await query(t, "SELECT status, version, log_count FROM tasks WHERE task_id = ?", first.task_id)).toEqual([{ status: "queued", version: 2, log_count: 2 }]);
    expect(await query(t, "SELECT * FROM fair_queue")).toEqual([]);
    expect(await query(t, "SELECT key, active FROM fair_keys")).toEqual([{ key: "k", active: 1 }]);

    // Its key is at its limit now: the next of that key waits in the fair queue, as before.
    const second = await createTask(t, { task_type: "tc_fast", concurrency_key: "k" });
    expect([second.status, second.queue_position]).toEqual(["created", 1]);
    expect(await query(t, "SELECT key, waiting, blocked FROM fair_queue")).toEqual([{ key: "k", waiting: 1, blocked: 1 }]);
    // Another key takes the last slot at once, ahead of the blocked one; then the namespace is full.
    expect((await createTask(t, { task_type: "tc_fast", concurrency_key: "other" })).status).toBe("queued");
    expect((await createTask(t, { task_type: "tc_fast" })).status).toBe("created");
    expect(await query(t, "SELECT COUNT(*) AS n FROM tasks WHERE status = 'queued'")).toEqual([{ n: 2 }]);
  });
});

import { describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, Latch, tenant, type Tenant } from "./helpers";
import { allEvents } from "./inspect";

const latch = new Latch();
registerHandler({
  type: "adm_held",
  run: async (ctx) => {
    await latch.hold(ctx.task.task_id, ctx.signal);
    return {};
  },
});

const stats = async (t: Tenant) => (await call("/v1/tasks/stats", { token: t.key })).body;

/** Replays the namespace's events and returns the most tasks that ever held a slot at once. */
async function peakActive(t: Tenant): Promise<number> {
  const status = new Map<string, string>();
  let active = 0;
  let peak = 0;
  for (const e of await allEvents(t)) {
    const was = status.get(e.task_id);
    const now = e.event_type.slice("task.".length);
    const holds = (s: string | undefined) => s === "queued" || s === "processing";
    active += (holds(now) ? 1 : 0) - (holds(was) ? 1 : 0);
    status.set(e.task_id, now);
    peak = Math.max(peak, active);
  }
  return peak;
}

describe("admission under the concurrency limit", () => {
  it("admits 100 of 150 concurrent creates, orders the rest, and frees one slot for exactly one task", async () => {
    const t = await tenant();
    const other = await tenant({ max_concurrent_tasks: 5 });
    const tasks = await Promise.all(Array.from({ length: 150 }, (_, i) => createTask(t, { task_type: "adm_held", inputs: { i } })));
    const otherTasks = await Promise.all(Array.from({ length: 8 }, () => createTask(other, { task_type: "adm_held" })));

    expect(await stats(t)).toMatchObject({ created: 50, max_concurrent_tasks: 100 });
    const s = await stats(t);
    expect(s.queued + s.processing).toBe(100);
    expect(await stats(other)).toMatchObject({ created: 3 });

    // Creation order is admission order at equal priority; the waiting ones know their place.
    const waiting: Task[] = [];
    for (const task of tasks) {
      const current = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
      if (current.status === "created") waiting.push(current);
      else expect(current.queue_position).toBeNull();
    }
    expect(waiting).toHaveLength(50);
    waiting.sort((a, b) => (a.queue_position ?? 0) - (b.queue_position ?? 0));
    expect(waiting.map((w) => w.queue_position)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const createdAt = waiting.map((w) => w.created_at);
    expect(createdAt).toEqual([...createdAt].sort());
    // Every admitted task arrived no later than the first waiting one.
    const admittedAt = tasks.filter((task) => !waiting.some((w) => w.task_id === task.task_id)).map((task) => task.created_at);
    expect(admittedAt.every((at) => at <= (waiting[0]?.created_at ?? ""))).toBe(true);

    // Let one running task finish: exactly one waiting task takes its slot.
    const running = tasks.find((task) => latch.entered.has(task.task_id)) ?? (await eventually(async () => tasks.find((task) => latch.entered.has(task.task_id))));
    latch.release(running.task_id);
    await eventually(async () => ((await stats(t)).created === 49 ? true : undefined), 10_000, "one admission");
    const after = await stats(t);
    expect(after.queued + after.processing).toBe(100);
    const first = (await call(`/v1/tasks/${waiting[0]?.task_id}`, { token: t.key })).body;
    expect(first.status).not.toBe("created");
    const second = (await call(`/v1/tasks/${waiting[1]?.task_id}`, { token: t.key })).body;
    expect(second.queue_position).toBe(1);

    expect(await peakActive(t)).toBe(100);
    expect(await peakActive(other)).toBe(5);
    expect(await stats(other)).toMatchObject({ created: 3 });

    for (const task of [...tasks, ...otherTasks]) await call(`/v1/tasks/${task.task_id}/cancel`, { token: task.namespace_id === t.namespaceId ? t.key : other.key, method: "POST" });
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0, processing: 0 });
    expect(await peakActive(t)).toBe(100);
  });

  it("admits higher priority first, then oldest first", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const blocker = await createTask(t, { task_type: "adm_held" });
    const low = await createTask(t, { task_type: "adm_held", priority: 1 });
    const mid1 = await createTask(t, { task_type: "adm_held", priority: 5 });
    const high = await createTask(t, { task_type: "adm_held", priority: 9 });
    const mid2 = await createTask(t, { task_type: "adm_held", priority: 5 });
    const position = async (id: string) => (await call(`/v1/tasks/${id}`, { token: t.key })).body.queue_position;
    expect(await position(high.task_id)).toBe(1);
    expect(await position(mid1.task_id)).toBe(2);
    expect(await position(mid2.task_id)).toBe(3);
    expect(await position(low.task_id)).toBe(4);

    await call(`/v1/tasks/${blocker.task_id}/cancel`, { token: t.key, method: "POST" });
    const admitted = (await call(`/v1/tasks/${high.task_id}`, { token: t.key })).body;
    expect(["queued", "processing"]).toContain(admitted.status);
    expect(await position(mid1.task_id)).toBe(1);
    for (const task of [low, mid1, high, mid2]) await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("applies a changed limit at once: lowering stops admission without killing work, raising admits", async () => {
    const t = await tenant({ max_concurrent_tasks: 3 });
    const tasks = [];
    for (let i = 0; i < 6; i++) tasks.push(await createTask(t, { task_type: "adm_held" }));
    expect(await stats(t)).toMatchObject({ created: 3 });

    const lowered = await call(`/v1/namespaces/${t.name}`, { token: "test-admin-token", method: "PATCH", body: { settings: { max_concurrent_tasks: 1 } } });
    expect(lowered.status).toBe(200);
    expect(lowered.body.settings.max_concurrent_tasks).toBe(1);
    let s = await stats(t);
    expect(s.queued + s.processing).toBe(3);
    expect(s.max_concurrent_tasks).toBe(1);

    // Two of the three running ones finish; the limit of one is still exceeded, so none is admitted.
    await call(`/v1/tasks/${tasks[0]?.task_id}/cancel`, { token: t.key, method: "POST" });
    await call(`/v1/tasks/${tasks[1]?.task_id}/cancel`, { token: t.key, method: "POST" });
    s = await stats(t);
    expect(s.queued + s.processing).toBe(1);
    expect(s.created).toBe(3);

    await call(`/v1/namespaces/${t.name}`, { token: "test-admin-token", method: "PATCH", body: { settings: { max_concurrent_tasks: 10 } } });
    s = await stats(t);
    expect(s.created).toBe(0);
    expect(s.queued + s.processing).toBe(4);
    for (const task of tasks) await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
  });
});

import { describe, expect, it } from "vitest";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, getTask, registerHeldHandler, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { allEvents, query } from "./inspect";

registerHeldHandler("bulk_held");
registerHandler({ type: "bulk_quick", run: async () => ({ ok: true }) });
registerHandler({
  type: "bulk_boom",
  run: async (ctx) => {
    throw new TaskFailure(ctx.task.inputs.code === "other" ? "other" : "boom", "it went wrong", false);
  },
});

const stats = async (t: Tenant) => (await call("/v1/tasks/stats", { token: t.key })).body;
const bulkCancel = (t: Tenant, body: unknown) => call<{ cancelled: number }>("/v1/tasks/bulk-cancel", { token: t.key, body });

/** How many terminal events each task got, by task id. */
async function terminalEvents(t: Tenant): Promise<Map<string, string[]>> {
  const ends = new Map<string, string[]>();
  for (const e of await allEvents(t)) {
    if (!["task.completed", "task.failed", "task.cancelled"].includes(e.event_type)) continue;
    ends.set(e.task_id, [...(ends.get(e.task_id) ?? []), e.event_type]);
  }
  return ends;
}

describe("bulk cancel", () => {
  it("refuses a call without a filter or with a bad one, changing nothing", async () => {
    const t = await tenant();
    await createTask(t, { task_type: "bulk_held" });
    expect((await bulkCancel(t, {})).status).toBe(422);
    expect((await bulkCancel(t, { status: ["running"] })).status).toBe(422);
    expect((await bulkCancel(t, { created_before: "yesterday" })).status).toBe(422);
    const s = await stats(t);
    expect(s.queued + s.processing).toBe(1);
    await bulkCancel(t, { task_type: "bulk_held" });
  });

  it("cancels a key's 3 000 tasks while admission serves it; the other key takes the slots, each task ends once", async () => {
    const t = await tenant({ max_concurrent_tasks: 3, max_concurrent_per_key: 2 });
    await stub(t).seedBacklog({ count: 3000, task_type: "bulk_held", keys: 1, key_prefix: "big", priority: 5 });
    const small: Task[] = [];
    for (let i = 0; i < 4; i++) small.push(await createTask(t, { task_type: "bulk_held", concurrency_key: "small" }));
    const [result, other] = await Promise.all([
      bulkCancel(t, { concurrency_key: "big0" }),
      // A change racing the steps: a cancel of a small task frees a slot that the big key may take.
      call(`/v1/tasks/${small[0]?.task_id}/cancel`, { token: t.key, method: "POST" }),
    ]);
    expect(result.status).toBe(200);
    expect(other.status).toBe(200);
    // Every big task that existed was cancelled: those waiting and any admitted meanwhile.
    expect(result.body.cancelled).toBe(3000);
    const left = await query<{ n: number }>(t, "SELECT COUNT(*) AS n FROM tasks WHERE concurrency_key = 'big0' AND status != 'cancelled'");
    expect(left[0]?.n).toBe(0);
    // The small key now has both its slots; its last task waits for its key.
    expect((await getTask(t, small[3]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_key", position: 1 });
    for (const [, ends] of await terminalEvents(t)) expect(ends).toHaveLength(1);
    const groups = await query(t, "SELECT key, waiting FROM fair_queue ORDER BY key");
    expect(groups).toEqual([{ key: "small", waiting: 1 }]);
    await bulkCancel(t, { status: ["created", "queued", "processing"] });
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0, processing: 0 });
  });

  it("works in steps that let other requests in, and leaves tasks created meanwhile alone", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    await stub(t).seedBacklog({ count: 2000, task_type: "bulk_held", keys: 0, key_prefix: "", priority: 5 });
    let bulkDone = false;
    const bulk = stub(t).bulkCancel({ task_type: ["bulk_held"] }).then((r) => {
      bulkDone = true;
      return r;
    });
    const during = await createTask(t, { task_type: "bulk_held", priority: 9 });
    // The create was answered between two steps of the bulk cancel, not after it.
    expect(bulkDone).toBe(false);
    const result = await bulk;
    expect(result.cancelled).toBe(2000);
    expect(result.steps).toBeGreaterThanOrEqual(80);
    // The task created during the call was not its business: it took the freed slot.
    expect(["queued", "processing"]).toContain((await getTask(t, during.task_id)).status);
    await bulkCancel(t, { task_type: "bulk_held" });
  });

  it("admits none of the tasks it cancels: a slot it frees goes to a task it leaves alone", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    await stub(t).seedBacklog({ count: 200, task_type: "bulk_held", keys: 1, key_prefix: "gone", priority: 5 });
    const kept = await createTask(t, { task_type: "bulk_held", concurrency_key: "keep" });
    const result = await bulkCancel(t, { concurrency_key: "gone0" });
    expect(result.body.cancelled).toBe(200);
    // Only the two running when the call began were ever admitted: no waiting task of the filter
    // was queued (and sent to a consumer) by a slot the call freed, only to be cancelled next.
    const admitted = await query<{ n: number }>(
      t,
      "SELECT COUNT(*) AS n FROM events WHERE event_type = 'task.queued' AND task_id IN (SELECT task_id FROM tasks WHERE concurrency_key = 'gone0')",
    );
    expect(admitted[0]?.n).toBe(2);
    const gone = await query<{ status: string; n: number }>(t, "SELECT status, COUNT(*) AS n FROM tasks WHERE concurrency_key = 'gone0' GROUP BY status");
    expect(gone).toEqual([{ status: "cancelled", n: 200 }]);
    for (const [, ends] of await terminalEvents(t)) expect(ends).toEqual(["task.cancelled"]);
    expect(["queued", "processing"]).toContain((await getTask(t, kept.task_id)).status);
    await bulkCancel(t, { task_type: "bulk_held" });
  });

  it("finds a sparse filter's few tasks across windows of the scan, a bounded number of rows a step", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    // 12 000 tasks over 4 000 keys: key user-7 has three, 4 000 apart, in three windows of 5 000.
    await stub(t).seedBacklog({ count: 12_000, task_type: "bulk_held", keys: 4000, key_prefix: "user-", priority: 5 });
    const result = await stub(t).bulkCancel({ concurrency_key: "user-7" });
    expect(result.cancelled).toBe(3);
    // Two passes (the waiting tasks, then every unfinished one) of three windows each.
    expect(result.steps).toBe(6);
    const left = await query<{ n: number }>(t, "SELECT COUNT(*) AS n FROM tasks WHERE status = 'cancelled'");
    expect(left[0]?.n).toBe(3);
    await bulkCancel(t, { task_type: "bulk_held" });
  });

  it("races completions: every task ends exactly once, cancelled or completed", async () => {
    const t = await tenant({ max_concurrent_tasks: 4 });
    const made: Task[] = [];
    for (let i = 0; i < 40; i++) made.push(await createTask(t, { task_type: "bulk_quick", inputs: { i } }));
    const result = await bulkCancel(t, { task_type: ["bulk_quick"], created_before: new Date(Date.now() + 60_000).toISOString() });
    expect(result.status).toBe(200);
    await eventually(async () => {
      const s = await stats(t);
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    }, 15_000, "every task to end");
    const ends = await terminalEvents(t);
    expect(ends.size).toBe(40);
    const cancelled = [...ends.values()].filter((e) => e[0] === "task.cancelled").length;
    for (const [, e] of ends) expect(e).toHaveLength(1);
    expect(cancelled).toBe(result.body.cancelled);
  });
});

describe("replay", () => {
  it("replays a finished task as a new one, a replay of a replay too; the original never changes", async () => {
    const t = await tenant();
    const original = await createTask(t, { task_type: "bulk_held", inputs: { a: 1 }, priority: 7, max_attempts: 2, concurrency_key: "cust" });
    const running = await call(`/v1/tasks/${original.task_id}/replay`, { token: t.key, method: "POST" });
    expect(running.status).toBe(409);
    const cancelled = (await call<Task>(`/v1/tasks/${original.task_id}/cancel`, { token: t.key, method: "POST" })).body;

    const first = await call<Task>(`/v1/tasks/${original.task_id}/replay`, { token: t.key, method: "POST", headers: { "Idempotency-Key": "r-1" } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ task_type: "bulk_held", inputs: { a: 1 }, priority: 7, max_attempts: 2, concurrency_key: "cust", replay_of_task_id: original.task_id });
    expect(first.body.task_id).not.toBe(original.task_id);
    const again = await call<Task>(`/v1/tasks/${original.task_id}/replay`, { token: t.key, method: "POST", headers: { "Idempotency-Key": "r-1" } });
    expect(again.body.task_id).toBe(first.body.task_id);
    expect(await getTask(t, original.task_id)).toMatchObject({ status: "cancelled", updated_at: cancelled.updated_at });

    await call(`/v1/tasks/${first.body.task_id}/cancel`, { token: t.key, method: "POST" });
    const second = await call<Task>(`/v1/tasks/${first.body.task_id}/replay`, { token: t.key, method: "POST" });
    expect(second.status).toBe(201);
    expect(second.body.replay_of_task_id).toBe(first.body.task_id);
    expect((await call(`/v1/tasks/tsk_nosuchtask/replay`, { token: t.key, method: "POST" })).status).toBe(404);
    await call(`/v1/tasks/${second.body.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("bulk-replays the failed tasks of an error code, read from the records, and only those", async () => {
    const t = await tenant();
    const boom: Task[] = [];
    for (let i = 0; i < 5; i++) boom.push(await createTask(t, { task_type: "bulk_boom", inputs: { i } }));
    const other = await createTask(t, { task_type: "bulk_boom", inputs: { code: "other" } });
    for (const task of [...boom, other]) await waitForStatus(t, task.task_id, "failed");

    expect((await call("/v1/tasks/bulk-replay", { token: t.key, body: { status: ["completed", "queued"] } })).status).toBe(422);
    const replay = await call<{ task_ids: string[]; replayed: number; next: unknown }>("/v1/tasks/bulk-replay", {
      token: t.key,
      body: { status: ["failed"], error_code: "boom", task_type: "bulk_boom" },
      headers: { "Idempotency-Key": "dead-letters-1" },
    });
    expect(replay.status).toBe(201);
    expect(replay.body).toMatchObject({ replayed: 5, next: null });
    const replays = await Promise.all(replay.body.task_ids.map((id) => getTask(t, id)));
    expect(replays.map((r) => r.replay_of_task_id).sort()).toEqual(boom.map((b) => b.task_id).sort());
    // The same Idempotency-Key answers with the first response and replays nothing again.
    const repeat = await call<{ task_ids: string[] }>("/v1/tasks/bulk-replay", {
      token: t.key,
      body: { status: ["failed"], error_code: "boom", task_type: "bulk_boom" },
      headers: { "Idempotency-Key": "dead-letters-1" },
    });
    expect(repeat.body.task_ids).toEqual(replay.body.task_ids);
    for (const id of replay.body.task_ids) await waitForStatus(t, id, "failed");
    // The replays failed too, but after the first call began: a filter ending then leaves them out.
    const before = await call<{ replayed: number }>("/v1/tasks/bulk-replay", {
      token: t.key,
      body: { status: "failed", error_code: "other", created_before: new Date(Date.now() + 1000).toISOString() },
    });
    expect(before.body.replayed).toBe(1);
  });
});

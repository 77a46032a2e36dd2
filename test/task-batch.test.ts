import { describe, expect, it } from "vitest";
import type { Task } from "../src/tasks/model";
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import type { NamespaceDO } from "../src/namespace/do";
import { namespaceStub } from "../src/namespace/stub";
import { call, createTask, getTask, stub, tenant, type Tenant } from "./helpers";
import { query, taskEvents } from "./inspect";

/** A pulled type: its tasks stay queued until a worker leases them, so nothing runs under the test. */
async function pulled(t: Tenant, taskType: string) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

const batch = (t: Tenant, tasks: unknown[], headers?: Record<string, string>) =>
  call<{ tasks: Task[] } & { error: { type: string; details: { index?: number; quota?: string } } }>("/v1/tasks/batch", { token: t.key, body: { tasks }, headers });

const stats = async (t: Tenant) => (await call<{ created: number; queued: number; processing: number }>("/v1/tasks/stats", { token: t.key })).body;

describe("POST /v1/tasks/batch", () => {
  it("creates every task in the order given and admits them under the concurrency limit", async () => {
    const t = await tenant({ max_concurrent_tasks: 3 });
    await pulled(t, "bt_order");
    const items = Array.from({ length: 5 }, (_, i) => ({ task_type: "bt_order", inputs: { i }, priority: i === 4 ? 9 : 5 }));
    const res = await batch(t, items);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.tasks.map((task) => task.inputs.i)).toEqual([0, 1, 2, 3, 4]);
    expect(new Set(res.body.tasks.map((task) => task.task_id)).size).toBe(5);
    expect(await stats(t)).toMatchObject({ created: 2, queued: 3 });
    // Admission takes the batch's highest priority first, then the oldest.
    expect(res.body.tasks.map((task) => task.status)).toEqual(["queued", "queued", "created", "created", "queued"]);
    expect((await getTask(t, res.body.tasks[4]?.task_id ?? "")).status).toBe("queued");
  });

  it("creates none when one item is bad, naming the first bad item's index", async () => {
    const t = await tenant();
    await pulled(t, "bt_bad");
    const good = { task_type: "bt_bad" };
    const cases: [unknown[], number, number][] = [
      [[good, { task_type: "no_such_type" }, good], 422, 1],
      [[good, good, { task_type: "bt_bad", priority: 42 }, { task_type: "Bad" }], 422, 2],
      [[good, { task_type: "bt_bad", status: "completed" }], 422, 1],
      [[good, good, good, { task_type: "bt_bad", parent_task_id: "tsk_nosuchparent00000000000" }], 422, 3],
      [[good, { task_type: "bt_bad", parent_task_id: "tsk_nosuchparent00000000000" }, { task_type: "no_such_type" }], 422, 1],
      [[good, { task_type: "bt_bad", delay_seconds: 5, run_at: "2030-01-01T00:00:00Z" }, { task_type: "bt_bad", parent_task_id: "tsk_nosuchparent00000000000" }], 422, 1],
      [[good, { task_type: "object_create", inputs: { object_id: "obj_x", collection_id: "col_x" } }], 422, 1],
      [[good, { task_type: "bt_bad", inputs: { blob: "x".repeat(70 * 1024) } }], 413, 1],
    ];
    for (const [items, status, index] of cases) {
      const res = await batch(t, items);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.error.details.index, JSON.stringify(res.body)).toBe(index);
    }
    expect((await batch(t, [])).status).toBe(422);
    expect((await batch(t, Array(1001).fill(good))).status).toBe(422);
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0, processing: 0 });
  });

  it("applies max_unfinished_tasks to the whole batch", async () => {
    const t = await tenant({ max_unfinished_tasks: 5 });
    await pulled(t, "bt_quota");
    const refused = await batch(t, Array(6).fill({ task_type: "bt_quota" }));
    expect(refused.status).toBe(409);
    expect(refused.body.error.details).toMatchObject({ quota: "max_unfinished_tasks", limit: 5 });
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0 });
    expect((await batch(t, Array(5).fill({ task_type: "bt_quota" }))).status).toBe(201);
    expect((await batch(t, [{ task_type: "bt_quota" }])).status).toBe(409);
  });

  it("replays the whole batch for a repeated Idempotency-Key, and refuses the key with another batch", async () => {
    const t = await tenant();
    await pulled(t, "bt_idem");
    const items = [{ task_type: "bt_idem", inputs: { n: 1 } }, { task_type: "bt_idem", inputs: { n: 2 } }];
    const first = await batch(t, items, { "Idempotency-Key": "batch-1" });
    expect(first.status).toBe(201);
    const again = await batch(t, items, { "Idempotency-Key": "batch-1" });
    expect(again.status).toBe(201);
    expect(again.body.tasks.map((task) => task.task_id)).toEqual(first.body.tasks.map((task) => task.task_id));
    expect((await batch(t, items.slice(0, 1), { "Idempotency-Key": "batch-1" })).status).toBe(422);
    expect(await stats(t)).toMatchObject({ queued: 2 });
  });

  it("answers a batch of 1000 tasks whose response is too large to keep for replay, and a retry creates nothing twice", async () => {
    const t = await tenant();
    await pulled(t, "bt_large");
    // D1 refuses a value over 2 000 000 bytes; the local D1 does not, so the trigger plays its part.
    await env.DB.exec(
      "CREATE TRIGGER IF NOT EXISTS d1_value_limit BEFORE UPDATE ON idempotency_keys WHEN length(NEW.response_body) > 2000000 BEGIN SELECT RAISE(ABORT, 'string or blob too big'); END",
    );
    try {
      const items = Array.from({ length: 1000 }, (_, i) => ({ task_type: "bt_large", inputs: { i, text: "y".repeat(2000) } }));
      const first = await batch(t, items, { "Idempotency-Key": "large-1" });
      expect(first.status, JSON.stringify(first.body).slice(0, 300)).toBe(201);
      expect(first.body.tasks).toHaveLength(1000);
      const again = await batch(t, items, { "Idempotency-Key": "large-1" });
      expect(again.status, JSON.stringify(again.body).slice(0, 300)).toBe(201);
      expect(again.body.tasks.map((task) => task.task_id)).toEqual(first.body.tasks.map((task) => task.task_id));
      const counts = await stats(t);
      expect(counts.created + counts.queued).toBe(1000);
      // The key stays bound to its batch in the object, though D1 kept no response.
      const other = await batch(t, items.slice(0, 10), { "Idempotency-Key": "large-1" });
      expect(other.status).toBe(422);
    } finally {
      await env.DB.exec("DROP TRIGGER IF EXISTS d1_value_limit");
    }
  });

  it("creates nothing twice when the object is asked again under the same batch key (the Worker died before it answered)", async () => {
    const t = await tenant();
    await pulled(t, "bt_retry");
    const items = [{ task_type: "bt_retry" }, { task_type: "bt_retry" }, { task_type: "bt_retry" }];
    const namespace = namespaceStub(env, t.namespaceId);
    const key = { key: "lost-answer", requestHash: "h1" };
    const first = await namespace.createTaskBatch(items, "http://edge.test", key);
    const second = await namespace.createTaskBatch(items, "http://edge.test", key);
    expect(first.ok && second.ok).toBe(true);
    if (first.ok && second.ok) expect(second.value.map((task) => task.task_id)).toEqual(first.value.map((task) => task.task_id));
    expect(await stats(t)).toMatchObject({ queued: 3 });
    const refused = await namespace.createTaskBatch(items.slice(0, 1), "http://edge.test", { key: "lost-answer", requestHash: "h2" });
    expect(refused.ok ? null : refused.error.type).toBe("validation_error");
  });

  it("keeps one key row per batch, holding its tasks' ids in order", async () => {
    const t = await tenant();
    await pulled(t, "bt_onerow");
    const namespace = namespaceStub(env, t.namespaceId);
    const made = await namespace.createTaskBatch(Array(50).fill({ task_type: "bt_onerow" }), "http://edge.test", { key: "one-row", requestHash: "h1" });
    expect(made.ok).toBe(true);
    const rows = await query<{ key: string; task_ids: string | null }>(t, "SELECT key, task_ids FROM idempotency WHERE key LIKE 'batch' || char(10) || '%'");
    expect(rows).toHaveLength(1);
    expect(rows[0]?.key).toBe("batch\none-row");
    if (made.ok) expect(JSON.parse(rows[0]?.task_ids ?? "null")).toEqual(made.value.map((task) => task.task_id));
  });

  it("answers a repeat of a batch stored before its ids were kept on its key row (a key row per task) with the same tasks", async () => {
    const t = await tenant();
    await pulled(t, "bt_oldrows");
    const items = [{ task_type: "bt_oldrows" }, { task_type: "bt_oldrows" }, { task_type: "bt_oldrows" }];
    const namespace = namespaceStub(env, t.namespaceId);
    const first = await namespace.createTaskBatch(items, "http://edge.test", { key: "old-layout", requestHash: "h1" });
    if (!first.ok) throw new Error(first.error.message);
    const ids = first.value.map((task) => task.task_id);
    // The layout before migration 9: the marker without ids, one row per task under `<marker>\n<index>`.
    await runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
      const marker = "batch\nold-layout";
      const { created_at: at } = state.storage.sql.exec<{ created_at: number }>("SELECT created_at FROM idempotency WHERE key = ?", marker).one();
      state.storage.sql.exec("UPDATE idempotency SET task_ids = NULL WHERE key = ?", marker);
      for (const [index, id] of ids.entries()) {
        state.storage.sql.exec("INSERT INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, '', ?, ?)", `${marker}\n${index}`, id, at);
      }
    });
    const again = await namespace.createTaskBatch(items, "http://edge.test", { key: "old-layout", requestHash: "h1" });
    expect(again.ok ? again.value.map((task) => task.task_id) : again.error).toEqual(ids);
    expect(await stats(t)).toMatchObject({ queued: 3 });
    const refused = await namespace.createTaskBatch(items.slice(0, 1), "http://edge.test", { key: "old-layout", requestHash: "h2" });
    expect(refused.ok ? null : refused.error.type).toBe("validation_error");
    expect(await stats(t)).toMatchObject({ queued: 3 });
  });

  it("answers a repeated batch whose tasks have finished since from their records", async () => {
    const t = await tenant();
    await pulled(t, "bt_done");
    const items = [{ task_type: "bt_done" }, { task_type: "bt_done" }];
    const namespace = namespaceStub(env, t.namespaceId);
    const first = await namespace.createTaskBatch(items, "http://edge.test", { key: "done-later", requestHash: "h1" });
    if (!first.ok) throw new Error(first.error.message);
    for (const task of first.value) expect((await namespace.cancelTask(task.task_id)).ok).toBe(true);
    const again = await namespace.createTaskBatch(items, "http://edge.test", { key: "done-later", requestHash: "h1" });
    expect(again.ok ? again.value.map((task) => [task.task_id, task.status]) : again.error).toEqual(first.value.map((task) => [task.task_id, "cancelled"]));
  });

  it("answers each created task with the queue position and waiting a read gives, and stores each one's position at its creation", async () => {
    const t = await tenant({ max_concurrent_tasks: 2, max_concurrent_per_key: 1 });
    await pulled(t, "bt_view");
    const item = (priority: number, key?: string, extra: Record<string, unknown> = {}) => ({ task_type: "bt_view", priority, ...(key ? { concurrency_key: key } : {}), ...extra });
    const view = (task: Task) => ({ status: task.status, queue_position: task.queue_position, reason: task.waiting?.reason, position: task.waiting?.position });
    const first = await batch(t, [item(5, "a"), item(5, "a"), item(9, "b"), item(5), item(3, "b")]);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    for (const task of first.body.tasks) expect(view(task), task.task_id).toEqual(view(await getTask(t, task.task_id)));
    const second = await batch(t, [item(5, "a"), item(9), item(5, "c"), item(3), item(5, "a", { delay_seconds: 600 }), item(9, "b"), item(5), item(1, "c")]);
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    for (const task of second.body.tasks) expect(view(task), task.task_id).toEqual(view(await getTask(t, task.task_id)));
    expect(second.body.tasks.filter((task) => task.status === "created").length).toBe(8);
    // At its creation a task is the newest: its place is behind every created task of its priority or higher.
    const waitingBefore = first.body.tasks.filter((task) => task.status === "created");
    for (const [index, task] of second.body.tasks.entries()) {
      const created = (await taskEvents(t, task.task_id)).find((e) => e.event_type === "task.created");
      const body = JSON.parse(String(created?.data)) as { data: { task: Task } };
      const ahead = [...waitingBefore, ...second.body.tasks.slice(0, index)].filter((other) => other.priority >= task.priority).length;
      expect(body.data.task.queue_position, `item ${index}`).toBe(ahead + 1);
    }
  });

  it("numbers a batch's tasks on from the namespace's counter, and the next task after them", async () => {
    const t = await tenant();
    await pulled(t, "bt_seq");
    const before = await createTask(t, { task_type: "bt_seq" });
    const created = await batch(t, Array.from({ length: 5 }, () => ({ task_type: "bt_seq" })));
    const after = await createTask(t, { task_type: "bt_seq" });
    const ids = [before.task_id, ...created.body.tasks.map((task) => task.task_id), after.task_id];
    const rows = await query<{ task_id: string; seq: number }>(t, "SELECT task_id, seq FROM tasks ORDER BY seq");
    expect(rows.map((r) => r.task_id)).toEqual(ids);
    const first = rows[0]?.seq ?? 0;
    expect(rows.map((r) => r.seq)).toEqual(ids.map((_, i) => first + i));
    expect(await query(t, "SELECT CAST(value AS INTEGER) AS n FROM meta WHERE key = 'task_seq'")).toEqual([{ n: first + 6 }]);
  });

  it("gives tasks made later ids that sort later, so indexes on task ids grow at their end", async () => {
    const t = await tenant();
    await pulled(t, "bt_ordered");
    const first = await batch(t, Array.from({ length: 20 }, () => ({ task_type: "bt_ordered" })));
    // A later millisecond: Workers' clock moves on across I/O.
    await scheduler.wait(5);
    const second = await batch(t, Array.from({ length: 20 }, () => ({ task_type: "bt_ordered" })));
    const single = await createTask(t, { task_type: "bt_ordered" });
    const latestFirst = first.body.tasks.map((task) => task.task_id).sort().at(-1) ?? "";
    const earliestSecond = second.body.tasks.map((task) => task.task_id).sort()[0] ?? "";
    expect(latestFirst < earliestSecond).toBe(true);
    expect(second.body.tasks.every((task) => task.task_id < single.task_id)).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import { type LogPage, call, createTask, eventually, Latch, tenant, waitForStatus } from "./helpers";
import { taskEvents } from "./inspect";

registerHandler({
  type: "life_echo",
  run: async (ctx) => {
    await ctx.progress({ percent: 50, message: "halfway", processed: 1, total: 2 });
    await ctx.log("echoing", "debug");
    return { echo: ctx.task.inputs };
  },
});

let flakyRuns = 0;
registerHandler({
  type: "life_flaky",
  run: async () => {
    flakyRuns++;
    if (flakyRuns === 1) throw new Error("transient trouble");
    return { runs: flakyRuns };
  },
});

registerHandler({
  type: "life_fatal",
  run: async () => {
    throw new TaskFailure("bad_input", "this can never work", false);
  },
});

describe("task lifecycle with a built-in handler", () => {
  it("runs a task from created to completed, with outputs, progress and logs", async () => {
    const t = await tenant();
    const created = await createTask(t, { task_type: "life_echo", inputs: { n: 1 } });
    expect(created).toMatchObject({
      task_type: "life_echo",
      namespace_id: t.namespaceId,
      inputs: { n: 1 },
      outputs: null,
      attempt: 1,
      max_attempts: 3,
      priority: 5,
      parent_task_id: null,
      error: null,
      expires_at: null,
    });
    // 9 characters of creation time (ms, base 36), then 20 random ones (SPEC: at least 96 random bits).
    expect(created.task_id).toMatch(/^tsk_[a-z0-9]{9}[a-z0-9]{20}$/);
    expect(["queued", "processing", "completed"]).toContain(created.status);
    expect(created.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const done = await waitForStatus(t, created.task_id, "completed");
    expect(done.outputs).toEqual({ echo: { n: 1 } });
    expect(done.progress).toEqual({ percent: 100, message: "halfway", processed: 1, total: 2 }); // SPEC §5: completed means 100 %
    expect(done.completed_at).not.toBeNull();
    expect(Date.parse(done.expires_at ?? "") - Date.parse(done.completed_at ?? "")).toBe(2592000 * 1000);
    expect(done.timeout_at).toBeNull();

    const logs = await call(`/v1/tasks/${created.task_id}/logs`, { token: t.key });
    expect(logs.status).toBe(200);
    const messages = logs.body.results.map((l: { message: string }) => l.message);
    expect(messages[0]).toContain("created");
    expect(messages.some((m: string) => m.startsWith("created → queued"))).toBe(true);
    expect(messages.some((m: string) => m.startsWith("queued → processing"))).toBe(true);
    expect(messages).toContain("echoing");
    expect(messages.at(-1)).toContain("processing → completed");
    expect(logs.body.results.find((l: { message: string }) => l.message === "echoing")).toMatchObject({ level: "debug", attempt: 1 });

    const events = await taskEvents(t, created.task_id);
    expect(events.map((e) => e.event_type)).toEqual(["task.created", "task.queued", "task.processing", "task.progress", "task.completed"]);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
  });

  it("retries a handler that throws and completes on the next attempt", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "life_flaky" });
    const done = await eventually(
      async () => {
        const res = await call(`/v1/tasks/${task.task_id}`, { token: t.key });
        return res.body.status === "completed" ? res.body : undefined;
      },
      15_000,
      "the retry to complete",
    );
    expect(done.attempt).toBe(2);
    expect(done.outputs).toEqual({ runs: 2 });
    expect(done.error).toBeNull();
  });

  it("fails at once on a non-retryable handler failure", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "life_fatal" });
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.attempt).toBe(1);
    expect(failed.error).toEqual({ code: "bad_input", message: "this can never work", retryable: false });
  });

  it("pages through logs oldest first", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "life_echo" });
    await waitForStatus(t, task.task_id, "completed");
    const all = await call(`/v1/tasks/${task.task_id}/logs?limit=100`, { token: t.key });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: LogPage = await call(`/v1/tasks/${task.task_id}/logs?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      expect(page.status).toBe(200);
      seen.push(...page.body.results.map((l: { message: string }) => l.message));
      cursor = page.body.pagination.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all.body.results.map((l: { message: string }) => l.message));
    expect((await call(`/v1/tasks/${task.task_id}/logs?cursor=abc`, { token: t.key })).status).toBe(422);
  });

  it("answers an unknown task with 404 and kills idempotently", async () => {
    const t = await tenant();
    expect((await call("/v1/tasks/tsk_doesnotexist", { token: t.key })).status).toBe(404);
    const kill = await call("/v1/tasks/tsk_doesnotexist", { token: t.key, method: "DELETE" });
    expect(kill.status).toBe(200);
    expect(kill.body.success).toBe(true);
  });

  it("refuses a parent that does not exist and keeps one that does", async () => {
    const t = await tenant();
    const missing = await call("/v1/tasks", { token: t.key, body: { task_type: "life_echo", parent_task_id: "tsk_nothere" } });
    expect(missing.status).toBe(422);
    const parent = await createTask(t, { task_type: "life_echo" });
    const child = await createTask(t, { task_type: "life_echo", parent_task_id: parent.task_id });
    expect(child.parent_task_id).toBe(parent.task_id);
  });
});

const latch = new Latch();
let sawAbort = false;
registerHandler({
  type: "life_held",
  run: async (ctx) => {
    ctx.signal.addEventListener("abort", () => (sawAbort = true));
    await latch.hold(ctx.task.task_id);
    await ctx.progress({ percent: 99 });
    return { finished: true };
  },
});

describe("cancellation of a running built-in handler", () => {
  it("cancels a processing task at once, and the handler learns it at its next report", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "life_held" });
    await waitForStatus(t, task.task_id, "processing");
    const cancelled = await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    expect(cancelled.body.completed_at).not.toBeNull();
    latch.release(task.task_id);
    await eventually(async () => (sawAbort ? true : undefined), 5000, "the handler's signal to abort");
    const after = await call(`/v1/tasks/${task.task_id}`, { token: t.key });
    expect(after.body.status).toBe("cancelled");
    expect(after.body.outputs).toBeNull();
    expect(after.body.progress.percent).toBeNull();
    const again = await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(after.body);
  });
});

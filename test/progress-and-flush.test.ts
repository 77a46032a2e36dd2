import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, ORIGIN, stub, tenant, waitForStatus } from "./helpers";
import { advance, taskEvents } from "./inspect";

const EMPTY = { percent: null, message: null, processed: null, total: null };

registerHandler({
  type: "pf_flaky",
  run: async (ctx) => {
    if (ctx.attempt === 1) {
      await ctx.progress({ percent: 60, message: "first try", processed: 6, total: 10 });
      throw new TaskFailure("upstream_busy", "try again later", true);
    }
    return { attempt: ctx.attempt };
  },
});
registerHandler({
  type: "pf_partial",
  run: async (ctx) => {
    await ctx.progress({ percent: 40, message: "stopped early", processed: 4, total: 10 });
    return { done: true };
  },
});
registerHandler({ type: "pf_idle", run: async () => ({}) });

const eventTask = (body: string): Task => (JSON.parse(body) as { data: { task: Task } }).data.task;

describe("progress across attempts and at the end (SPEC §5)", () => {
  it("starts a retried attempt with empty progress, not the failed attempt's", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "pf_flaky" });
    const requeued = await eventually(async () => {
      const events = await taskEvents(t, task.task_id);
      const found = events.find((e) => e.event_type === "task.queued" && eventTask(e.data).attempt === 2);
      return found ? eventTask(found.data) : undefined;
    }, 10_000, "the retry");
    // The failed attempt did report progress before it failed...
    const reported = (await taskEvents(t, task.task_id)).filter((e) => e.event_type === "task.progress").map((e) => eventTask(e.data).progress);
    expect(reported.at(-1)).toEqual({ percent: 60, message: "first try", processed: 6, total: 10 });
    // ...and the retry transition leaves none of it.
    expect(requeued.status).toBe("queued");
    expect(requeued.error?.code).toBe("upstream_busy");
    expect(requeued.progress).toEqual(EMPTY);

    await advance(t, 10 * 60_000); // past the retry's wait
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.attempt).toBe(2);
    expect(done.progress).toEqual({ ...EMPTY, percent: 100 });
  });

  it("makes a completed task 100 %, keeping the rest of its progress as last reported", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "pf_partial" });
    const done = await waitForStatus(t, task.task_id, "completed");
    const expected = { percent: 100, message: "stopped early", processed: 4, total: 10 };
    expect(done.progress).toEqual(expected);
    const completed = (await taskEvents(t, task.task_id)).find((e) => e.event_type === "task.completed");
    expect(completed && eventTask(completed.data).progress).toEqual(expected);

    // A task that never reported progress is 100 % too.
    const silent = await createTask(t, { task_type: "pf_idle" });
    expect((await waitForStatus(t, silent.task_id, "completed")).progress).toEqual({ ...EMPTY, percent: 100 });
    // A task that fails for good keeps what it had: only completion means 100 %.
    const failing = await createTask(t, { task_type: "pf_flaky", max_attempts: 1 });
    expect((await waitForStatus(t, failing.task_id, "failed")).progress).toEqual({ percent: 60, message: "first try", processed: 6, total: 10 });
  });
});

describe("flushing the outbox on demand", () => {
  it("puts every task created before a list walk into D1, beyond one flush batch of 100", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    // One atomic step creates them all (as a data-plane operation does), so their 250 records
    // wait in the outbox together; the flush timer is half a second away.
    const specs = Array.from({ length: 250 }, (_, n) => ({ key: `pf-${n}`, input: { task_type: "pf_idle", inputs: { n } } }));
    const created = await stub(t).createTasks(specs, ORIGIN);
    expect(created.ok).toBe(true);
    // The list's first page flushes before it reads D1; the count is D1's.
    const listed = await call<{ pagination: { total: number } }>("/v1/tasks?limit=5&include_total=true", { token: t.key });
    expect(listed.status).toBe(200);
    expect(listed.body.pagination.total).toBe(250);
    const inD1 = await env.DB.prepare("SELECT COUNT(*) AS n FROM task_records WHERE namespace_id = ?").bind(t.namespaceId).first<{ n: number }>();
    expect(inD1?.n).toBe(250);
  });
});

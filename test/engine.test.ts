import { createExecutionContext, createMessageBatch, evictDurableObject, getQueueResult, runInDurableObject } from "cloudflare:test";
import type { TestNamespaceDO } from "./namespace-do";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import worker from "../src/index";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import { TASK_STATUSES, type TaskStatus } from "../src/tasks/model";
import { type ApiResponse, call, createTask, eventually, Latch, sleep, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance, query, taskEvents } from "./inspect";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";

const latch = new Latch();
registerHandler({
  type: "eng_held",
  run: async (ctx) => {
    await latch.hold(ctx.task.task_id, ctx.signal);
    return {};
  },
});

registerHandler({
  type: "eng_chatty",
  run: async (ctx) => {
    // Reports progress without pause until released, so that a restart cuts a call in flight.
    for (let i = 0; !latch.entered.has(`${ctx.task.task_id}:done`); i++) {
      latch.entered.add(ctx.task.task_id);
      await ctx.progress({ processed: i });
      if (ctx.signal.aborted) return {};
    }
    return { ok: true };
  },
});

const runs = new Map<string, number>();
registerHandler({
  type: "eng_count",
  run: async (ctx) => {
    runs.set(ctx.task.task_id, (runs.get(ctx.task.task_id) ?? 0) + 1);
    await ctx.progress({ percent: 100 });
    return { runs: runs.get(ctx.task.task_id) ?? 0 };
  },
});

let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => processor?.restore());

/** SPEC §5's table, written out independently of the implementation's. */
const ALLOWED = new Set([
  "created→queued", "created→cancelled",
  "queued→processing", "queued→cancelled", "queued→failed",
  "processing→completed", "processing→failed", "processing→cancelled", "processing→queued",
]);
const PATH_TO: Record<TaskStatus, TaskStatus[]> = {
  created: [],
  queued: ["queued"],
  processing: ["queued", "processing"],
  completed: ["queued", "processing", "completed"],
  failed: ["queued", "failed"],
  cancelled: ["cancelled"],
};

const force = (t: Tenant, taskId: string, to: TaskStatus) =>
  runInDurableObject(stub(t), (instance: TestNamespaceDO) => instance.forceTransition(taskId, to));

/** Swallows the namespace's queue sends, handing the messages to the test instead. */
async function captureSends(t: Tenant): Promise<TaskMessage[]> {
  const captured: TaskMessage[] = [];
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    instance.io.sendBatch = async (messages) => {
      captured.push(...messages.map((m) => m.body));
    };
  });
  return captured;
}

async function deliver(queue: string, bodies: unknown[]) {
  const batch = createMessageBatch(
    queue,
    bodies.map((body, i) => ({ id: `m${i}-${Math.random()}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

describe("the transition table", () => {
  it("allows exactly the transitions of SPEC §5 and refuses every other pair", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const blocker = await createTask(t, { task_type: "eng_held" });
    for (const from of TASK_STATUSES) {
      for (const to of TASK_STATUSES) {
        const task = await createTask(t, { task_type: "eng_held" });
        expect(task.status).toBe("created");
        for (const step of PATH_TO[from]) expect((await force(t, task.task_id, step)).ok).toBe(true);
        const result = await force(t, task.task_id, to);
        const pair = `${from}→${to}`;
        expect(result.ok, pair).toBe(ALLOWED.has(pair));
        const after = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
        expect(after.status, pair).toBe(ALLOWED.has(pair) ? to : from);
      }
    }
    latch.release(blocker.task_id);
  });
});

describe("races and duplicates", () => {
  it("a cancel racing a completion ends the task once, with one terminal event", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await call("/v1/processors/race_job", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    /** Cancels and completes one task, at once or one after the other; checks it ended once. */
    const cancelAndComplete = async (i: number, order: "race" | "complete first" | "cancel first"): Promise<string> => {
      const task = await createTask(t, { task_type: "race_job" });
      const { token } = (await eventually(async () => processor?.last(task.task_id))).body.callback;
      const cancel = () => call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
      const complete = () => call(`/v1/tasks/${task.task_id}/callback/complete`, { token, body: { outputs: { i } } });
      let cancelled: ApiResponse<{ status: string }>;
      let completed: ApiResponse;
      if (order === "race") {
        [cancelled, completed] = await Promise.all([cancel(), complete()]);
      } else if (order === "complete first") {
        completed = await complete();
        cancelled = await cancel();
      } else {
        cancelled = await cancel();
        completed = await complete();
      }
      expect(cancelled.status, order).toBe(200);
      const final = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
      if (completed.status === 200) {
        expect(final.status, order).toBe("completed");
        expect(cancelled.body.status, order).toBe("completed");
      } else {
        expect(completed.status, order).toBe(409);
        expect(final.status, order).toBe("cancelled");
        expect(final.outputs, order).toBeNull();
      }
      const terminal = (await taskEvents(t, task.task_id)).filter((e) => ["task.completed", "task.cancelled", "task.failed"].includes(e.event_type));
      expect(terminal, order).toHaveLength(1);
      return final.status;
    };
    for (let i = 0; i < 8; i++) await cancelAndComplete(i, "race");
    // A race may go the same way every time; each order once makes sure both outcomes are checked.
    expect(await cancelAndComplete(8, "complete first")).toBe("completed");
    expect(await cancelAndComplete(9, "cancel first")).toBe("cancelled");
  });

  it("the same queue message delivered 5 times, 2 at once, is claimed and completed once", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const task = await createTask(t, { task_type: "eng_count" });
    const message = await eventually(async () => captured.find((m) => m.task_id === task.task_id));

    const first = await deliver("tasks", [message]);
    expect(first.explicitAcks).toHaveLength(1);
    const concurrent = await Promise.all([deliver("tasks", [message]), deliver("tasks", [message])]);
    const later = await deliver("tasks", [message, message]);
    for (const result of [...concurrent, later]) expect(result.retryMessages).toHaveLength(0);

    expect(runs.get(task.task_id)).toBe(1);
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.outputs).toEqual({ runs: 1 });
    const types = (await taskEvents(t, task.task_id)).map((e) => e.event_type);
    expect(types).toEqual(["task.created", "task.queued", "task.processing", "task.progress", "task.completed"]);
  });

  it("drops a malformed message and ignores one for an attempt that is not current", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const task = await createTask(t, { task_type: "eng_count" });
    const message = await eventually(async () => captured.find((m) => m.task_id === task.task_id));
    const result = await deliver("tasks", [{ nonsense: true }, "text", { ...message, attempt: 7 }]);
    expect(result.explicitAcks).toHaveLength(3);
    expect(runs.get(task.task_id)).toBeUndefined();
    expect((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.status).toBe("queued");
  });

  it("the dead-letter consumer fails the task with dispatch_failed and frees its slot", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const captured = await captureSends(t);
    const task = await createTask(t, { task_type: "eng_count" });
    const waiting = await createTask(t, { task_type: "eng_count" });
    expect(waiting.status).toBe("created");
    const message = await eventually(async () => captured.find((m) => m.task_id === task.task_id));
    const result = await deliver("tasks-dlq", [message, message]);
    expect(result.explicitAcks).toHaveLength(2);
    const failed = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
    expect(failed).toMatchObject({ status: "failed", error: { code: "dispatch_failed", retryable: false } });
    expect((await call(`/v1/tasks/${waiting.task_id}`, { token: t.key })).body.status).toBe("queued");
    expect((await taskEvents(t, task.task_id)).filter((e) => e.event_type === "task.failed")).toHaveLength(1);
  });
});

describe("durability", () => {
  it("a built-in handler's reports reach the object after it restarted mid-run", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "eng_chatty" });
    await eventually(async () => (latch.entered.has(task.task_id) ? true : undefined));
    // The object is reset while the handler reports: the consumer's stub to it breaks.
    for (let i = 0; i < 3; i++) {
      await runInDurableObject(stub(t), (_instance, state) => state.abort("restart")).catch(() => undefined);
      await sleep(50);
    }
    latch.entered.add(`${task.task_id}:done`);
    // Completed by the handler's own final report, not by a lease expiry and a retry.
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.attempt).toBe(1);
  });

  it("a Durable Object restart keeps every task and timer", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    processor = fakeProcessor();
    await call("/v1/processors/durable_job", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 30 } });
    const a = await createTask(t, { task_type: "durable_job" });
    const b = await createTask(t, { task_type: "durable_job" });
    const c = await createTask(t, { task_type: "durable_job", priority: 9 });
    await eventually(async () => (processor?.last(a.task_id) && processor.last(b.task_id) ? true : undefined));
    const before = await Promise.all([a, b, c].map(async (x) => (await call(`/v1/tasks/${x.task_id}`, { token: t.key })).body));
    const timersBefore = await query(t, "SELECT task_id, kind, due_at FROM timers WHERE task_id != '' ORDER BY task_id, kind");
    expect(timersBefore.length).toBeGreaterThanOrEqual(4);

    await evictDurableObject(stub(t));

    const after = await Promise.all([a, b, c].map(async (x) => (await call(`/v1/tasks/${x.task_id}`, { token: t.key })).body));
    expect(after).toEqual(before);
    expect(await query(t, "SELECT task_id, kind, due_at FROM timers WHERE task_id != '' ORDER BY task_id, kind")).toEqual(timersBefore);

    // The timers still fire: both leases run out and both tasks go back to the queue.
    await advance(t, 31_000);
    for (const x of [a, b]) {
      const retried = await eventually(async () => {
        const current = (await call(`/v1/tasks/${x.task_id}`, { token: t.key })).body;
        return current.attempt === 2 ? current : undefined;
      });
      expect(retried.error.code).toBe("lease_expired");
    }
    expect((await call(`/v1/tasks/${c.task_id}`, { token: t.key })).body.status).toBe("created");
    for (const x of [a, b, c]) await call(`/v1/tasks/${x.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("a failed queue send leaves the task queued with a timer, and a later alarm sends it", async () => {
    const t = await tenant();
    let failures = 0;
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.sendBatch = async () => {
        failures++;
        throw new Error("queue unavailable");
      };
    });
    const task = await createTask(t, { task_type: "eng_count" });
    await eventually(async () => (failures > 0 ? true : undefined));
    const timer = await eventually(async () => {
      const rows = await query<{ tries: number; due_at: number }>(t, "SELECT tries, due_at FROM timers WHERE task_id = ? AND kind = 'send'", task.task_id);
      return rows[0] && rows[0].tries >= 1 ? rows[0] : undefined;
    });
    expect(timer.due_at).toBeGreaterThan(Date.now());
    expect((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.status).toBe("queued");

    // The Durable Object restarts with its real queue; the retry timer sends the message.
    await evictDurableObject(stub(t));
    await advance(t, 60_000);
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.outputs).toEqual({ runs: 1 });
  });

  it("log lines written while D1 fails are flushed once it recovers", async () => {
    const t = await tenant();
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.d1Batch = async () => {
        throw new Error("D1 unavailable");
      };
    });
    const task = await createTask(t, { task_type: "eng_count" });
    await waitForStatus(t, task.task_id, "completed");
    // The lines are served from the outbox meanwhile.
    const pending = (await call(`/v1/tasks/${task.task_id}/logs`, { token: t.key })).body.results;
    expect(pending.length).toBeGreaterThanOrEqual(4);
    const inD1 = await env.DB.prepare("SELECT COUNT(*) AS n FROM task_logs WHERE task_id = ?").bind(task.task_id).first<number>("n");
    expect(inD1).toBe(0);

    await evictDurableObject(stub(t));
    await advance(t, 120_000);
    await eventually(async () => {
      const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM task_logs WHERE task_id = ?").bind(task.task_id).first<number>("n");
      return n === pending.length ? true : undefined;
    });
    const flushed = (await call(`/v1/tasks/${task.task_id}/logs`, { token: t.key })).body.results;
    expect(flushed).toEqual(pending);
    expect(await query(t, "SELECT id FROM outbox WHERE task_id = ?", task.task_id)).toHaveLength(0);
  });
});

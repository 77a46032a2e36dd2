import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import worker from "../src/index";
import { registerHandler } from "../src/handlers/registry";
import { DELIVERY_WATCHDOG_MS } from "../src/namespace/core";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import { call, createTask, eventually, getTask, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance, query, taskEvents } from "./inspect";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";

const runs = new Map<string, number>();
registerHandler({
  type: "wd_count",
  run: async (ctx) => {
    runs.set(ctx.task.task_id, (runs.get(ctx.task.task_id) ?? 0) + 1);
    return { runs: runs.get(ctx.task.task_id) ?? 0 };
  },
});

let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => processor?.restore());

type SendOutcome = "drop" | "throw" | "send";

/**
 * Stands between the namespace's Durable Object and its queue: each send batch takes the next
 * outcome of `plan` (then "send" once the plan is used up). A dropped batch resolves as if the
 * queue had taken it, like a message lost in a crash; every batch's messages are recorded.
 */
async function interceptSends(t: Tenant, plan: SendOutcome[]): Promise<{ messages: TaskMessage[]; outcomes: SendOutcome[] }> {
  const seen = { messages: [] as TaskMessage[], outcomes: [] as SendOutcome[] };
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const send = instance.io.sendBatch;
    instance.io.sendBatch = async (batch) => {
      const outcome = plan.shift() ?? "send";
      seen.outcomes.push(outcome);
      seen.messages.push(...batch.map((m) => m.body));
      if (outcome === "throw") throw new Error("queue unavailable");
      if (outcome === "send") await send(batch);
    };
  });
  return seen;
}

/** The task's send timer (its delivery watchdog once the message is out), if it has one. */
async function sendTimer(t: Tenant, taskId: string): Promise<{ due_at: number; tries: number } | undefined> {
  const rows = await query<{ due_at: number; tries: number }>(t, "SELECT due_at, tries FROM timers WHERE task_id = ? AND kind = 'send'", taskId);
  return rows[0];
}

const clockNow = (t: Tenant) => runInDurableObject(stub(t), (instance: NamespaceDO) => instance.clock.now());

async function deliver(bodies: TaskMessage[]) {
  const batch = createMessageBatch(
    "tasks",
    bodies.map((body, i) => ({ id: `wd${i}-${Math.random()}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

const eventTypes = async (t: Tenant, taskId: string) => (await taskEvents(t, taskId)).map((e) => e.event_type);

describe("the delivery watchdog", () => {
  it("sends a queued task again when its message was lost, every 5 minutes until one is claimed", async () => {
    const t = await tenant();
    const sends = await interceptSends(t, ["drop", "drop"]);
    const task = await createTask(t, { task_type: "wd_count" });
    await eventually(async () => (sends.outcomes.length === 1 ? true : undefined), 10_000, "the first send");
    const watchdog = await eventually(async () => {
      const timer = await sendTimer(t, task.task_id);
      return timer && timer.due_at > (await clockNow(t)) ? timer : undefined;
    });
    expect(watchdog.due_at - (await clockNow(t))).toBeGreaterThan(DELIVERY_WATCHDOG_MS - 10_000);

    // Not before its time: a minute short of it, nothing is sent again.
    await advance(t, DELIVERY_WATCHDOG_MS - 60_000);
    expect(sends.outcomes).toEqual(["drop"]);
    expect((await getTask(t, task.task_id)).status).toBe("queued");

    // The second message is lost too: the watchdog re-arms and tries once more.
    await advance(t, 60_000 + 1);
    expect(sends.outcomes).toEqual(["drop", "drop"]);
    expect((await sendTimer(t, task.task_id))?.due_at).toBeGreaterThan(await clockNow(t));
    await advance(t, DELIVERY_WATCHDOG_MS + 1);

    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done).toMatchObject({ attempt: 1, outputs: { runs: 1 } });
    expect(sends.messages.filter((m) => m.task_id === task.task_id)).toEqual([
      { namespace_id: t.namespaceId, task_id: task.task_id, attempt: 1 },
      { namespace_id: t.namespaceId, task_id: task.task_id, attempt: 1 },
      { namespace_id: t.namespaceId, task_id: task.task_id, attempt: 1 },
    ]);
    expect(await eventTypes(t, task.task_id)).toEqual(["task.created", "task.queued", "task.processing", "task.completed"]);
    expect(await sendTimer(t, task.task_id)).toBeUndefined();
  });

  it("frees the slot a lost message held: the namespace runs again", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const sends = await interceptSends(t, ["drop"]);
    const stranded = await createTask(t, { task_type: "wd_count" });
    const waiting = await createTask(t, { task_type: "wd_count" });
    await eventually(async () => (sends.outcomes.length === 1 ? true : undefined), 10_000, "the first send");
    expect((await getTask(t, waiting.task_id)).status).toBe("created");

    await advance(t, DELIVERY_WATCHDOG_MS + 1);
    await waitForStatus(t, stranded.task_id, "completed");
    await waitForStatus(t, waiting.task_id, "completed");
  });

  it("retries a re-send that fails like any other send", async () => {
    const t = await tenant();
    const sends = await interceptSends(t, ["drop", "throw"]);
    const task = await createTask(t, { task_type: "wd_count" });
    await eventually(async () => (sends.outcomes.length === 1 ? true : undefined), 10_000, "the first send");

    await advance(t, DELIVERY_WATCHDOG_MS + 1);
    expect(sends.outcomes).toEqual(["drop", "throw"]);
    // The failed re-send is retried after the send backoff (a second), by the alarm on its own,
    // not after another 5 minutes.
    await eventually(async () => (sends.outcomes.length === 3 ? true : undefined), 10_000, "the retried re-send");
    expect(sends.outcomes).toEqual(["drop", "throw", "send"]);
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.outputs).toEqual({ runs: 1 });
  });

  it("never sends a claimed task again, however long it runs", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await call("/v1/processors/wd_slow", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 3600 } });
    const sends = await interceptSends(t, []);
    const task = await createTask(t, { task_type: "wd_slow" });
    await eventually(async () => processor?.last(task.task_id));
    expect((await getTask(t, task.task_id)).status).toBe("processing");
    expect(await sendTimer(t, task.task_id)).toBeUndefined();

    await advance(t, 3 * DELIVERY_WATCHDOG_MS);
    expect(sends.messages.filter((m) => m.task_id === task.task_id)).toHaveLength(1);
    expect(processor.dispatched.filter((d) => d.body.task.task_id === task.task_id)).toHaveLength(1);
    expect((await getTask(t, task.task_id)).status).toBe("processing");
    await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("a message that turns up after the re-send claimed the task is refused and changes nothing", async () => {
    const t = await tenant();
    const sends = await interceptSends(t, ["drop"]);
    const task = await createTask(t, { task_type: "wd_count" });
    await eventually(async () => (sends.outcomes.length === 1 ? true : undefined), 10_000, "the first send");
    const late = sends.messages[0];
    if (!late) throw new Error("no message was sent");

    await advance(t, DELIVERY_WATCHDOG_MS + 1);
    await waitForStatus(t, task.task_id, "completed");
    const before = await eventTypes(t, task.task_id);

    // The lost message was only slow: it arrives now, twice, after the re-send ran the task.
    const result = await deliver([late, late]);
    expect(result.explicitAcks).toHaveLength(2);
    expect(result.retryMessages).toHaveLength(0);
    expect(runs.get(task.task_id)).toBe(1);
    expect(await eventTypes(t, task.task_id)).toEqual(before);
    expect(before.filter((type) => type === "task.processing" || type === "task.completed")).toEqual(["task.processing", "task.completed"]);
  });

  it("a cancelled task's watchdog sends nothing", async () => {
    const t = await tenant();
    const sends = await interceptSends(t, ["drop"]);
    const task = await createTask(t, { task_type: "wd_count" });
    await eventually(async () => (sends.outcomes.length === 1 ? true : undefined), 10_000, "the first send");
    await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    expect(await sendTimer(t, task.task_id)).toBeUndefined();

    await advance(t, DELIVERY_WATCHDOG_MS + 1);
    expect(sends.outcomes).toEqual(["drop"]);
    expect((await getTask(t, task.task_id)).status).toBe("cancelled");
  });
});

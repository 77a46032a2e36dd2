import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { TaskMessage } from "../src/namespace/messages";
import { namespaceStub } from "../src/namespace/stub";
import { captureSends, deliver } from "./counting";
import { call, createTask, eventually, tenant, type Tenant, waitForStatus } from "./helpers";
import { taskEvents } from "./inspect";

/**
 * Claim-ahead (issue 11): the report call that frees slots hands the consumer the built-in tasks
 * those slots admitted, already claimed, so it works them without a queue hop. Each is claimed
 * once, under its own token and lease; the limit holds; what it cannot take stays on the queue.
 */

const runs = new Map<string, number>();
const batches: number[] = [];
registerHandler({
  type: "ca_batch",
  run: async (ctx) => {
    runs.set(ctx.task.task_id, (runs.get(ctx.task.task_id) ?? 0) + 1);
    return { alone: true };
  },
  runBatch: async (ctxs) => {
    batches.push(ctxs.length);
    return ctxs.map((ctx) => {
      runs.set(ctx.task.task_id, (runs.get(ctx.task.task_id) ?? 0) + 1);
      return { batched: ctxs.length };
    });
  },
});

async function messagesOf(captured: TaskMessage[], taskIds: string[]): Promise<TaskMessage[]> {
  return eventually(async () => {
    const found = taskIds.map((id) => captured.find((m) => m.task_id === id));
    return found.every((m) => m !== undefined) ? (found as TaskMessage[]) : undefined;
  });
}

const eventTypes = async (t: Tenant, taskId: string) => (await taskEvents(t, taskId)).map((e) => e.event_type);
const statusOf = async (t: Tenant, taskId: string) => (await call(`/v1/tasks/${taskId}`, { token: t.key })).body.status as string;

describe("claim-ahead", () => {
  it("runs the tasks that the finished batch's slots admitted in the same invocation, each once, with no queue message", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    const captured = await captureSends(t);
    const tasks = [];
    for (let i = 0; i < 6; i++) tasks.push(await createTask(t, { task_type: "ca_batch" }));
    // Two admitted and sent; four wait for slots.
    const first = await messagesOf(captured, [tasks[0]!.task_id, tasks[1]!.task_id]);
    const result = await deliver(env, first);
    expect(result.retryMessages).toEqual([]);
    for (const task of tasks) expect((await waitForStatus(t, task.task_id, "completed")).outputs).toEqual({ batched: 2 });
    // The four later tasks were claimed ahead: none of them ever went to the queue.
    expect(captured.map((m) => m.task_id).sort()).toEqual([tasks[0]!.task_id, tasks[1]!.task_id].sort());
    for (const task of tasks) {
      expect(runs.get(task.task_id)).toBe(1);
      expect(await eventTypes(t, task.task_id)).toEqual(["task.created", "task.queued", "task.processing", "task.completed"]);
    }
  });

  it("refuses a late or duplicated queue delivery of a task claimed ahead: one claim, one completion, one event each", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const captured = await captureSends(t);
    const ns = namespaceStub(env, t.namespaceId);
    const a = await createTask(t, { task_type: "ca_batch" });
    const b = await createTask(t, { task_type: "ca_batch" });
    const [ma] = await messagesOf(captured, [a.task_id]);
    const [ca] = await ns.claimMany([ma!]);
    if (!ca?.claimed) throw new Error("a's claim should win");
    const { results, claims } = await ns.reportAndClaim(
      [{ task_id: a.task_id, token: ca.token, report: { kind: "complete", outputs: { a: true } } }],
      { task_types: ["ca_batch"], max: 10 },
    );
    expect(results.map((r) => r.ok)).toEqual([true]);
    // A receipt: how the report went, without the task's view the consumer never reads.
    expect(results[0]).toEqual({ ok: true, value: { status: "completed", lease_expires_at: null } });
    expect(claims.map((c) => c.task.task_id)).toEqual([b.task_id]);
    expect(claims[0]!.task.status).toBe("processing");
    // The message b would have had, delivered twice (a send that raced the claim, redelivered).
    const late = { namespace_id: t.namespaceId, task_id: b.task_id, attempt: 1 };
    const delivered = await deliver(env, [late, late]);
    expect(delivered.retryMessages).toEqual([]);
    expect(delivered.explicitAcks).toHaveLength(2);
    expect(runs.has(b.task_id)).toBe(false);
    const done = await ns.reportMany([
      { task_id: b.task_id, token: claims[0]!.token, report: { kind: "complete", outputs: { b: true } } },
      { task_id: b.task_id, token: claims[0]!.token, report: { kind: "complete", outputs: { again: true } } },
    ]);
    expect(done.map((r) => (r.ok ? "ok" : r.error.type))).toEqual(["ok", "conflict"]);
    expect((await waitForStatus(t, b.task_id, "completed")).outputs).toEqual({ b: true });
    expect(await eventTypes(t, b.task_id)).toEqual(["task.created", "task.queued", "task.processing", "task.completed"]);
  });

  it("sends to the queue a task its reports admitted that the claim-ahead left (its send held in the step, then set)", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    const captured = await captureSends(t);
    const ns = namespaceStub(env, t.namespaceId);
    const a = await createTask(t, { task_type: "ca_batch" });
    const b = await createTask(t, { task_type: "ca_batch" });
    const c = await createTask(t, { task_type: "ca_batch" });
    const d = await createTask(t, { task_type: "ca_batch" });
    const [ma, mb] = await messagesOf(captured, [a.task_id, b.task_id]);
    const [ca, cb] = await ns.claimMany([ma!, mb!]);
    if (!ca?.claimed || !cb?.claimed) throw new Error("both claims should win");
    // Both slots free in one step and admit C and D; the claim-ahead takes one of them.
    const { results, claims } = await ns.reportAndClaim(
      [
        { task_id: a.task_id, token: ca.token, report: { kind: "complete", outputs: {} } },
        { task_id: b.task_id, token: cb.token, report: { kind: "complete", outputs: {} } },
      ],
      { task_types: ["ca_batch"], max: 1 },
    );
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(claims.map((claim) => claim.task.task_id)).toEqual([c.task_id]);
    expect(await statusOf(t, d.task_id)).toBe("queued");
    // D goes to the queue as any admitted task does; C never does.
    const [md] = await messagesOf(captured, [d.task_id]);
    expect(md).toMatchObject({ task_id: d.task_id, attempt: 1 });
    expect(captured.some((m) => m.task_id === c.task_id)).toBe(false);
    expect((await deliver(env, [md!])).retryMessages).toEqual([]);
    expect((await waitForStatus(t, d.task_id, "completed")).outputs).toEqual({ batched: 1 });
    expect(await eventTypes(t, d.task_id)).toEqual(["task.created", "task.queued", "task.processing", "task.completed"]);
  });

  it("takes no task cancelled after its admission, no retry still in its delay, no task of another type; the limit holds", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    const captured = await captureSends(t);
    const ns = namespaceStub(env, t.namespaceId);
    await call("/v1/processors/ca_pushed", { token: t.key, method: "PUT", body: { url: "https://processor.example/run" } });
    const a = await createTask(t, { task_type: "ca_batch", max_attempts: 3 });
    const b = await createTask(t, { task_type: "ca_batch" });
    const c = await createTask(t, { task_type: "ca_batch" });
    const pushed = await createTask(t, { task_type: "ca_pushed" });
    const [ma, mb] = await messagesOf(captured, [a.task_id, b.task_id]);
    const [ca, cb] = await ns.claimMany([ma!, mb!]);
    if (!ca?.claimed || !cb?.claimed) throw new Error("both claims should win");
    // B completes without a claim-ahead: C is admitted, then cancelled before anyone claims it.
    expect((await ns.reportMany([{ task_id: b.task_id, token: cb.token, report: { kind: "complete", outputs: {} } }]))[0]?.ok).toBe(true);
    expect(await statusOf(t, c.task_id)).toBe("queued");
    expect((await call(`/v1/tasks/${c.task_id}/cancel`, { token: t.key, method: "POST" })).status).toBe(200);
    // C's slot went to the pushed task, which is the queue's; A's retry waits for its delay.
    expect(await statusOf(t, pushed.task_id)).toBe("queued");
    const { results, claims } = await ns.reportAndClaim(
      [{ task_id: a.task_id, token: ca.token, report: { kind: "fail", error: { code: "flaky", message: "try again" }, retryable: true } }],
      { task_types: ["ca_batch", "ca_pushed"], max: 10 },
    );
    expect(results.map((r) => (r.ok ? r.value.status : r.error.type))).toEqual(["queued"]);
    expect(claims).toEqual([]);
    expect(await statusOf(t, c.task_id)).toBe("cancelled");
    expect(await eventTypes(t, c.task_id)).toEqual(["task.created", "task.queued", "task.cancelled"]);
    expect(await statusOf(t, a.task_id)).toBe("queued");
    expect(await statusOf(t, pushed.task_id)).toBe("queued");
    const stats = (await call("/v1/tasks/stats", { token: t.key })).body;
    expect(stats.queued + stats.processing).toBeLessThanOrEqual(2);
  });
});

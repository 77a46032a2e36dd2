import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { namespaceStub } from "../src/namespace/stub";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import type { TaskMessage } from "../src/namespace/messages";
import { captureSends, deliver } from "./counting";
import { call, createTask, eventually, Latch, tenant, type Tenant, waitForStatus } from "./helpers";
import { query, taskEvents } from "./inspect";

/** Batched claims and reports (issue 11): every item is fenced on its own. */

const runs = new Map<string, number>();
registerHandler({
  type: "cb_count",
  run: async (ctx) => {
    runs.set(ctx.task.task_id, (runs.get(ctx.task.task_id) ?? 0) + 1);
    await ctx.progress({ percent: 50 });
    return { runs: runs.get(ctx.task.task_id) ?? 0 };
  },
});

const latch = new Latch();
const batchSizes: number[] = [];
registerHandler({
  type: "cb_batch",
  run: async () => ({ alone: true }),
  // Waits for the test, then reports for each task; a task whose inputs say so fails alone.
  runBatch: async (ctxs) => {
    batchSizes.push(ctxs.length);
    await latch.hold("cb_batch");
    return Promise.all(
      ctxs.map(async (ctx) => {
        if ((ctx.task.inputs as { fail?: boolean }).fail) return new TaskFailure("chosen", "this one fails", false);
        try {
          await ctx.progress({ percent: 90, message: "nearly" });
          return { batched: ctxs.length };
        } catch (err) {
          return err instanceof Error ? err : new Error(String(err));
        }
      }),
    );
  },
});

async function messagesOf(captured: TaskMessage[], taskIds: string[]): Promise<TaskMessage[]> {
  return eventually(async () => {
    const found = taskIds.map((id) => captured.find((m) => m.task_id === id));
    return found.every((m) => m !== undefined) ? (found as TaskMessage[]) : undefined;
  });
}

const terminalEvents = async (t: Tenant, taskId: string) =>
  (await taskEvents(t, taskId)).filter((e) => ["task.completed", "task.cancelled", "task.failed"].includes(e.event_type));

describe("a batched claim", () => {
  it("claims each attempt once in a batch holding duplicates, a cancelled task and a stale attempt", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const [a, b, c] = [await createTask(t, { task_type: "cb_count" }), await createTask(t, { task_type: "cb_count" }), await createTask(t, { task_type: "cb_count" })];
    const [ma, mb, mc] = await messagesOf(captured, [a.task_id, b.task_id, c.task_id]);
    expect((await call(`/v1/tasks/${b.task_id}/cancel`, { token: t.key, method: "POST" })).status).toBe(200);
    // A's message three times, B cancelled, C's message for an attempt that does not exist.
    const result = await deliver(env, [ma, ma, mb, { ...mc!, attempt: mc!.attempt + 1 }, ma]);
    expect(result.retryMessages).toEqual([]);
    expect(result.explicitAcks).toHaveLength(5);
    expect((await waitForStatus(t, a.task_id, "completed")).outputs).toEqual({ runs: 1 });
    expect(runs.get(a.task_id)).toBe(1);
    expect(await terminalEvents(t, a.task_id)).toHaveLength(1);
    expect((await call(`/v1/tasks/${b.task_id}`, { token: t.key })).body.status).toBe("cancelled");
    expect(runs.has(b.task_id)).toBe(false);
    // C was not claimed by the stale message: its own message still runs it, once.
    expect((await call(`/v1/tasks/${c.task_id}`, { token: t.key })).body.status).toBe("queued");
    await deliver(env, [mc, mc]);
    expect((await waitForStatus(t, c.task_id, "completed")).outputs).toEqual({ runs: 1 });
  });
});

/** A namespace with two queued tasks of cb_count, their queue messages kept from the consumer. */
async function twoQueued() {
  const t = await tenant();
  const captured = await captureSends(t);
  const a = await createTask(t, { task_type: "cb_count" });
  const b = await createTask(t, { task_type: "cb_count" });
  const [ma, mb] = await messagesOf(captured, [a.task_id, b.task_id]);
  return { t, ns: namespaceStub(env, t.namespaceId), a, b, ma: ma!, mb: mb! };
}

describe("a batch of claims", () => {
  it("claims a queued task once when its message comes twice in one batch, beside another task's claim", async () => {
    const { t, ns, a, b, ma, mb } = await twoQueued();
    // The second message of A must see A as the first claim left it, not as it was read before.
    const claims = await ns.claimMany([ma, ma, mb]);
    expect(claims.map((c) => c.claimed)).toEqual([true, false, true]);
    expect(await query(t, "SELECT task_id, attempt FROM attempts WHERE task_id = ?", a.task_id)).toEqual([{ task_id: a.task_id, attempt: 1 }]);
    expect((await call<{ status: string }>(`/v1/tasks/${b.task_id}`, { token: t.key })).body.status).toBe("processing");
  });
});

describe("a batched report", () => {
  it("applies each item as the single report would: a stale, forged or repeated item spoils none of the others", async () => {
    const { t, ns, a, b, ma, mb } = await twoQueued();
    const [ca, cb] = await ns.claimMany([ma, mb]);
    if (!ca?.claimed || !cb?.claimed) throw new Error("both claims should win");
    // B's attempt ends (cancelled): its token is stale from now on.
    expect((await call(`/v1/tasks/${b.task_id}/cancel`, { token: t.key, method: "POST" })).status).toBe(200);
    const results = await ns.reportMany([
      { task_id: a.task_id, token: ca.token, report: { kind: "progress", progress: { percent: 40 } } },
      { task_id: b.task_id, token: cb.token, report: { kind: "complete", outputs: { late: true } } },
      { task_id: a.task_id, token: `${t.namespaceId}.forged`, report: { kind: "complete", outputs: { forged: true } } },
      { task_id: a.task_id, token: ca.token, report: { kind: "logs", lines: [{ message: "from a batch" }] } },
      { task_id: a.task_id, token: ca.token, report: { kind: "complete", outputs: { done: true } } },
      { task_id: a.task_id, token: ca.token, report: { kind: "complete", outputs: { again: true } } },
    ]);
    expect(results.map((r) => (r.ok ? "ok" : r.error.type))).toEqual(["ok", "conflict", "unauthorized", "ok", "ok", "conflict"]);
    const done = await waitForStatus(t, a.task_id, "completed");
    expect(done.outputs).toEqual({ done: true });
    expect(await terminalEvents(t, a.task_id)).toHaveLength(1);
    const cancelled = (await call(`/v1/tasks/${b.task_id}`, { token: t.key })).body;
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.outputs).toBeNull();
    const logs = (await call(`/v1/tasks/${a.task_id}/logs`, { token: t.key })).body.results.map((l: { message: string }) => l.message);
    expect(logs).toContain("from a batch");
  });
});

describe("a batch handler", () => {
  it("works the tasks of one type together; one cancelled mid-batch and one failing leave the others to complete", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const tasks = [];
    for (let i = 0; i < 4; i++) tasks.push(await createTask(t, { task_type: "cb_batch", inputs: { fail: i === 3 } }));
    const messages = await messagesOf(captured, tasks.map((task) => task.task_id));
    const before = batchSizes.length;
    const delivered = deliver(env, messages);
    await eventually(async () => (latch.entered.has("cb_batch") && batchSizes.length > before ? true : undefined));
    expect(batchSizes.at(-1)).toBe(4);
    expect((await call(`/v1/tasks/${tasks[1]!.task_id}/cancel`, { token: t.key, method: "POST" })).status).toBe(200);
    latch.release("cb_batch");
    const result = await delivered;
    expect(result.retryMessages).toEqual([]);
    for (const i of [0, 2]) expect((await waitForStatus(t, tasks[i]!.task_id, "completed")).outputs).toEqual({ batched: 4 });
    const cancelled = (await call(`/v1/tasks/${tasks[1]!.task_id}`, { token: t.key })).body;
    expect(cancelled.status).toBe("cancelled");
    expect(cancelled.outputs).toBeNull();
    expect(await terminalEvents(t, tasks[1]!.task_id)).toHaveLength(1);
    expect((await waitForStatus(t, tasks[3]!.task_id, "failed")).error).toMatchObject({ code: "chosen", retryable: false });
  });
});

describe("object_create in a batch", () => {
  it("indexes the objects of a batch together, and fails alone the task whose object vanished", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "batched" } })).body;
    const collection = (await call("/v1/collections", { token: t.key, body: { collection_name: "batched", source_bucket_ids: [bucket.bucket_id] } })).body;
    const made = [];
    for (const content of ["the striker scored twice", "rain over the hills", "a vanishing object"]) {
      made.push((await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key, body: { content } })).body as { object_id: string; task_ids: string[] });
    }
    const taskIds = made.map((m) => m.task_ids[0]!);
    const messages = await messagesOf(captured, taskIds);
    // Gone between its task's creation and its run, as a delete racing the consumer would leave it.
    await env.DB.prepare("DELETE FROM objects WHERE object_id = ?").bind(made[2]!.object_id).run();
    const result = await deliver(env, messages);
    expect(result.retryMessages).toEqual([]);
    for (const taskId of taskIds.slice(0, 2)) {
      const done = await waitForStatus(t, taskId, "completed");
      expect(done.outputs).toMatchObject({ document_id: expect.stringMatching(/^doc_/) });
      expect(done.progress).toMatchObject({ percent: 100 });
      const logs = (await call(`/v1/tasks/${taskId}/logs`, { token: t.key })).body.results.map((l: { message: string }) => l.message);
      expect(logs.some((m: string) => m.startsWith(`document ${(done.outputs as { document_id: string }).document_id} of object`))).toBe(true);
    }
    expect((await waitForStatus(t, taskIds[2]!, "failed")).error).toMatchObject({ code: "object_not_found", retryable: false });
    const docs = (await call(`/v1/collections/${collection.collection_id}/documents`, { token: t.key })).body;
    expect(docs.results.map((d: { object_id: string }) => d.object_id).sort()).toEqual([made[0]!.object_id, made[1]!.object_id].sort());
  });
});

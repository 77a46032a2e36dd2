import { runInDurableObject } from "cloudflare:test";
import type { TestNamespaceDO } from "./namespace-do";
import { env } from "cloudflare:workers";
import { namespaceStub } from "../src/namespace/stub";
import { describe, expect, it, vi } from "vitest";
import { BulkStep } from "../src/namespace/bulk-step";
import { FairQueue } from "../src/namespace/fairness";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, getTask, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance, query } from "./inspect";

interface Lease {
  task: Task;
  attempt: number;
  lease_expires_at: string;
  timeout_at: string;
  callback: { url: string; token: string };
}
interface BatchResult {
  task_id: string | null;
  status: number;
  task?: Task;
  error?: { type: string; message: string; details?: { status?: string } };
}

async function pullProcessor(t: Tenant, taskType: string, leaseSeconds?: number) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull", ...(leaseSeconds ? { lease_seconds: leaseSeconds } : {}) } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { mode: string; url: string | null };
}

async function lease(t: Tenant, taskType: string, body: Record<string, unknown> = {}): Promise<Lease[]> {
  const res = await call<{ leases: Lease[] }>(`/v1/processors/${taskType}/lease`, { token: t.key, body });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.leases;
}

async function reportBatch(t: Tenant, reports: Record<string, unknown>[]): Promise<BatchResult[]> {
  const res = await call<{ results: BatchResult[] }>("/v1/callbacks", { token: t.key, body: { reports } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.results;
}

/** Records every message the namespace's object puts on the queue; with `drop`, none reaches it. */
async function recordSends(t: Tenant, drop = false): Promise<TaskMessage[]> {
  const sent: TaskMessage[] = [];
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const send = instance.io.sendBatch;
    instance.io.sendBatch = async (batch) => {
      sent.push(...batch.map((m) => m.body));
      if (!drop) await send(batch);
    };
  });
  return sent;
}

const stats = async (t: Tenant) => (await call<{ created: number; queued: number; processing: number }>("/v1/tasks/stats", { token: t.key })).body;

/** Makes the object's reports of one task fail after all their writes (completion, event, log line, snapshot, admission). */
async function failReportsOf(t: Tenant, taskId: string | undefined): Promise<void> {
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const attempts = (instance as unknown as { attempts: { report: (...args: unknown[]) => unknown } }).attempts;
    const report = attempts.report.bind(attempts);
    attempts.report = (...args: unknown[]) => {
      const result = report(...args);
      if (args[0] === taskId) throw new Error("report failed after its writes");
      return result;
    };
  });
}

describe("pull-mode processors", () => {
  it("registers a type for pulling without a url; mode appears on every processor", async () => {
    const t = await tenant();
    expect(await pullProcessor(t, "gpu_pull")).toMatchObject({ task_type: "gpu_pull", mode: "pull", url: null, lease_seconds: 300 });
    const push = await call("/v1/processors/gpu_push", { token: t.key, method: "PUT", body: { url: "https://processor.test/run" } });
    expect(push.body).toMatchObject({ mode: "push", url: "https://processor.test/run" });
    const list = await call<{ results: { task_type: string; mode: string }[] }>("/v1/processors", { token: t.key });
    expect(list.body.results.map((p) => [p.task_type, p.mode]).sort()).toEqual([["gpu_pull", "pull"], ["gpu_push", "push"]]);
    for (const body of [{ mode: "pull", url: "https://processor.test/run" }, { mode: "push" }, {}, { mode: "poll" }]) {
      expect((await call("/v1/processors/other", { token: t.key, method: "PUT", body })).status, JSON.stringify(body)).toBe(422);
    }
    expect((await call("/v1/processors/gpu_push/lease", { token: t.key, body: {} })).status).toBe(409);
    expect((await call("/v1/processors/nothing/lease", { token: t.key, body: {} })).status).toBe(404);
    expect((await call("/v1/processors/gpu_pull/lease", { token: t.key, body: { max_tasks: 101 } })).status).toBe(422);
    expect((await call("/v1/processors/gpu_pull/lease", { token: t.key, body: { wait_seconds: 61 } })).status).toBe(422);
  });

  it("leases highest priority then oldest first, each task once, under its own token, and never sends them to the queue", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_order");
    const sent = await recordSends(t);
    const low = await createTask(t, { task_type: "pl_order", priority: 1 });
    const first = await createTask(t, { task_type: "pl_order" });
    const second = await createTask(t, { task_type: "pl_order" });
    const urgent = await createTask(t, { task_type: "pl_order", priority: 9 });
    const leased = await lease(t, "pl_order", { max_tasks: 3 });
    expect(leased.map((l) => l.task.task_id)).toEqual([urgent.task_id, first.task_id, second.task_id]);
    expect(new Set(leased.map((l) => l.callback.token)).size).toBe(3);
    for (const l of leased) {
      expect(l.task.status).toBe("processing");
      expect(l.attempt).toBe(1);
      expect(l.callback.url).toBe(`http://edge.test/v1/tasks/${l.task.task_id}/callback`);
    }
    const rest = await lease(t, "pl_order", { max_tasks: 10 });
    expect(rest.map((l) => l.task.task_id)).toEqual([low.task_id]);
    expect(await lease(t, "pl_order")).toEqual([]);

    // The single callbacks work with a leased token, as for a pushed task.
    const done = await call(`/v1/tasks/${low.task_id}/callback/complete`, { token: rest[0]?.callback.token, body: { outputs: { ok: true } } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "completed", outputs: { ok: true } });

    // The watchdog would have sent a pushed task again by now, and the expired leases have made
    // retries: a pulled task never goes out.
    await advance(t, 6 * 60_000);
    await advance(t, 6 * 60_000);
    expect((await getTask(t, first.task_id)).status).toBe("queued");
    expect(sent.filter((m) => [low, first, second, urgent].some((task) => task.task_id === m.task_id))).toEqual([]);
    expect((await lease(t, "pl_order", { max_tasks: 10 })).map((l) => l.task.task_id)).toEqual([urgent.task_id, first.task_id, second.task_id]);
  });

  it("admits a pulled task without a send timer: no alarm round for a task that never goes to the queue", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    await pullProcessor(t, "pl_timer");
    const created = await call<{ tasks: Task[] }>("/v1/tasks/batch", { token: t.key, body: { tasks: [{ task_type: "pl_timer" }, { task_type: "pl_timer" }, { task_type: "pl_timer" }] } });
    expect(created.body.tasks.map((task) => task.status)).toEqual(["queued", "queued", "created"]);
    expect(await query(t, "SELECT task_id FROM timers WHERE kind = 'send'")).toEqual([]);
    const [first] = await lease(t, "pl_timer", { max_tasks: 1 });
    await reportBatch(t, [{ token: first?.callback.token, type: "complete" }]);
    // The freed slot admits the third task, leasable at once and again without a send timer.
    expect((await getTask(t, created.body.tasks[2]?.task_id ?? "")).status).toBe("queued");
    expect(await query(t, "SELECT task_id FROM timers WHERE kind = 'send'")).toEqual([]);
    expect((await lease(t, "pl_timer", { max_tasks: 10 })).map((l) => l.task.task_id).sort()).toEqual(
      [created.body.tasks[1]?.task_id, created.body.tasks[2]?.task_id].sort(),
    );
  });

  it("leaves out a task whose claim throws, with nothing of that claim kept, and leases the others", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_throw");
    const tasks = [await createTask(t, { task_type: "pl_throw" }), await createTask(t, { task_type: "pl_throw" }), await createTask(t, { task_type: "pl_throw" })];
    const broken = tasks[1]?.task_id;
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      const attempts = (instance as unknown as { attempts: { claim: (...args: unknown[]) => { claimed: boolean } } }).attempts;
      const claim = attempts.claim.bind(attempts);
      // The claim goes all the way (transition, event, log line, snapshot) and then fails.
      attempts.claim = (...args: unknown[]) => {
        const result = claim(...args);
        if ((args[0] as { task_id: string }).task_id === broken) throw new Error("claim failed after its writes");
        return result;
      };
    });
    const leased = await lease(t, "pl_throw", { max_tasks: 10 });
    expect(leased.map((l) => l.task.task_id)).toEqual([tasks[0]?.task_id, tasks[2]?.task_id]);
    expect((await getTask(t, broken ?? "")).status).toBe("queued");
    expect(await query(t, "SELECT event_type FROM events WHERE task_id = ? ORDER BY seq", broken ?? "")).toEqual([{ event_type: "task.created" }, { event_type: "task.queued" }]);
    // The record owed to D1 is built from the row at the mark's version: the row as the call left it.
    const owed = await query(t, "SELECT t.status, r.version = t.version AS current FROM record_outbox r JOIN tasks t USING (task_id) WHERE task_id = ?", broken ?? "");
    for (const row of owed) expect(row).toEqual({ status: "queued", current: 1 });
    expect(await query(t, "SELECT payload FROM outbox WHERE task_id = ? AND payload LIKE '%leased%'", broken ?? "")).toEqual([]);
    const others = await query(t, "SELECT task_id FROM events WHERE event_type = 'task.processing' ORDER BY seq");
    expect(others).toEqual([{ task_id: tasks[0]?.task_id }, { task_id: tasks[2]?.task_id }]);
  });

  it("a batched report that throws keeps nothing of its own and fails the call; the others apply once each", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_report_throw");
    for (let i = 0; i < 3; i++) await createTask(t, { task_type: "pl_report_throw" });
    const leased = await lease(t, "pl_report_throw", { max_tasks: 10 });
    const broken = leased[1]?.task.task_id;
    await failReportsOf(t, broken);
    const res = await call("/v1/callbacks", { token: t.key, body: { reports: leased.map((l) => ({ token: l.callback.token, type: "complete" })) } });
    // An item that could not be applied has no status of its own: the call fails, as a single callback would.
    expect(res.status).toBe(500);
    expect((await getTask(t, broken ?? "")).status).toBe("processing");
    expect(await query(t, "SELECT event_type FROM events WHERE task_id = ? ORDER BY seq", broken ?? "")).toEqual([
      { event_type: "task.created" }, { event_type: "task.queued" }, { event_type: "task.processing" },
    ]);
    // The record owed to D1 is built from the row at the mark's version: the row as the call left it.
    const owed = await query(t, "SELECT t.status, r.version = t.version AS current FROM record_outbox r JOIN tasks t USING (task_id) WHERE task_id = ?", broken ?? "");
    for (const row of owed) expect(row).toEqual({ status: "processing", current: 1 });
    for (const l of [leased[0], leased[2]]) {
      expect((await getTask(t, l?.task.task_id ?? "")).status).toBe("completed");
      expect(await query(t, "SELECT seq FROM events WHERE task_id = ? AND event_type = 'task.completed'", l?.task.task_id ?? "")).toHaveLength(1);
    }
  });

  it("fills the slots a batch of reports frees once, after the lot; a report that throws frees none", async () => {
    const t = await tenant({ max_concurrent_tasks: 3 });
    await pullProcessor(t, "pl_admit");
    const made: string[] = [];
    for (let i = 0; i < 6; i++) made.push((await createTask(t, { task_type: "pl_admit" })).task_id);
    const leased = await lease(t, "pl_admit", { max_tasks: 10 });
    expect(leased).toHaveLength(3);
    const broken = leased[1]?.task.task_id;
    await failReportsOf(t, broken);
    const res = await call("/v1/callbacks", { token: t.key, body: { reports: leased.map((l) => ({ token: l.callback.token, type: "complete" })) } });
    expect(res.status).toBe(500);
    // Two slots freed, two waiting tasks admitted, oldest first; the limit holds.
    const statuses = await Promise.all(made.map(async (id) => (await getTask(t, id)).status));
    expect(statuses).toEqual(["completed", "processing", "completed", "queued", "queued", "created"]);
    const events = await query<{ event_type: string; task_id: string }>(t, "SELECT event_type, task_id FROM events WHERE event_type IN ('task.completed', 'task.queued') AND seq > (SELECT MAX(seq) FROM events WHERE event_type = 'task.processing') ORDER BY seq");
    expect(events.map((e) => e.event_type)).toEqual(["task.completed", "task.completed", "task.queued", "task.queued"]);
    expect(events.slice(2).map((e) => e.task_id)).toEqual(made.slice(3, 5));
    // The admitted tasks are leasable at once.
    expect((await lease(t, "pl_admit", { max_tasks: 10 })).map((l) => l.task.task_id)).toEqual(made.slice(3, 5));
  });

  it("evicts the finished tasks of a flush together, each with how it ended for late reports; a running one stays", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_evict");
    for (let i = 0; i < 4; i++) await createTask(t, { task_type: "pl_evict" });
    const [done, failed, alsoDone, running] = (await lease(t, "pl_evict", { max_tasks: 10 })) as [Lease, Lease, Lease, Lease];
    await reportBatch(t, [
      { token: done.callback.token, type: "complete", outputs: { ok: 1 } },
      { token: failed.callback.token, type: "fail", error: { code: "bad", message: "no" }, retryable: false },
      { token: alsoDone.callback.token, type: "complete" },
    ]);
    for (let i = 0; i < 5; i++) await advance(t, 1000);
    const left = await query<{ task_id: string }>(t, "SELECT task_id FROM tasks");
    expect(left.map((r) => r.task_id)).toEqual([running.task.task_id]);
    const ended = await query<{ task_id: string; final_status: string | null }>(t, "SELECT task_id, final_status FROM attempts ORDER BY started_at, task_id");
    expect(new Map(ended.map((a) => [a.task_id, a.final_status]))).toEqual(
      new Map([[done.task.task_id, "completed"], [failed.task.task_id, "failed"], [alsoDone.task.task_id, "completed"], [running.task.task_id, null]]),
    );
    // Their records are in D1, and a late report learns how each ended.
    expect(await getTask(t, failed.task.task_id)).toMatchObject({ status: "failed", error: { code: "bad" } });
    const late = await reportBatch(t, [
      { token: done.callback.token, type: "complete" },
      { token: failed.callback.token, type: "progress", percent: 5 },
      { token: running.callback.token, type: "complete" },
    ]);
    expect(late.map((r) => [r.status, r.error?.details?.status])).toEqual([[409, "completed"], [409, "failed"], [200, undefined]]);
  });

  it("never gives one task to two leases made at the same time", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_race");
    const made = [];
    for (let i = 0; i < 10; i++) made.push((await createTask(t, { task_type: "pl_race" })).task_id);
    const leases = (await Promise.all(Array.from({ length: 6 }, () => lease(t, "pl_race", { max_tasks: 3 })))).flat();
    const ids = leases.map((l) => l.task.task_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...made].sort());
  });

  it("answers a waiting lease as soon as a task of its type is created", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_wait");
    const waiting = lease(t, "pl_wait", { wait_seconds: 30 });
    await eventually(async () => ((await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.streamCounts().long_polls)) === 1 ? true : undefined));
    const task = await createTask(t, { task_type: "pl_wait" });
    const leased = await waiting;
    expect(leased.map((l) => l.task.task_id)).toEqual([task.task_id]);
    expect((await getTask(t, task.task_id)).status).toBe("processing");
  });

  it("counts a waiting lease against max_open_streams", async () => {
    const t = await tenant({ max_open_streams: 1 });
    await pullProcessor(t, "pl_quota");
    const waiting = lease(t, "pl_quota", { wait_seconds: 30 });
    await eventually(async () => ((await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.streamCounts().long_polls)) === 1 ? true : undefined));
    const refused = await call("/v1/processors/pl_quota/lease", { token: t.key, body: { wait_seconds: 5 } });
    expect(refused.status).toBe(429);
    // Without waiting, a lease holds nothing open and is answered.
    expect((await call("/v1/processors/pl_quota/lease", { token: t.key, body: {} })).status).toBe(200);
    await createTask(t, { task_type: "pl_quota" });
    expect(await waiting).toHaveLength(1);
  });

  it("retries a leased task whose lease expired, and it is leasable again after its retry delay", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_expire", 5);
    const task = await createTask(t, { task_type: "pl_expire" });
    const [first] = await lease(t, "pl_expire");
    expect(first?.task.task_id).toBe(task.task_id);
    await advance(t, 6_000);
    const retried = await getTask(t, task.task_id);
    expect(retried).toMatchObject({ status: "queued", attempt: 2, error: { code: "lease_expired" } });
    // Attempt 1 has ended: its reports change nothing.
    const stale = await reportBatch(t, [{ token: first?.callback.token, type: "complete" }]);
    expect(stale).toMatchObject([{ task_id: task.task_id, status: 409 }]);
    await advance(t, 6_000); // past the retry delay of attempt 2 (at most 5 s)
    const again = await lease(t, "pl_expire");
    expect(again.map((l) => [l.task.task_id, l.attempt])).toEqual([[task.task_id, 2]]);
  });

  it("keeps queued + processing within max_concurrent_tasks while workers lease and report", async () => {
    const t = await tenant({ max_concurrent_tasks: 3 });
    await pullProcessor(t, "pl_limit");
    for (let i = 0; i < 7; i++) await createTask(t, { task_type: "pl_limit" });
    expect(await stats(t)).toMatchObject({ created: 4, queued: 3, processing: 0 });
    const leased = await lease(t, "pl_limit", { max_tasks: 10 });
    expect(leased).toHaveLength(3);
    expect(await stats(t)).toMatchObject({ created: 4, queued: 0, processing: 3 });
    const results = await reportBatch(t, leased.slice(0, 2).map((l) => ({ token: l.callback.token, type: "complete" })));
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    expect(await stats(t)).toMatchObject({ created: 2, queued: 2, processing: 1 });
    const more = await lease(t, "pl_limit", { max_tasks: 10 });
    expect(more).toHaveLength(2);
    expect(await stats(t)).toMatchObject({ created: 2, queued: 0, processing: 3 });
  });

  it("switching modes: a queued task's message no longer claims it once pulled, and push mode sends the pulled ones", async () => {
    const t = await tenant();
    const sent = await recordSends(t, true);
    await call("/v1/processors/pl_switch", { token: t.key, method: "PUT", body: { url: "https://processor.test/run" } });
    const pushed = await createTask(t, { task_type: "pl_switch" });
    const [message] = await eventually(async () => {
      const mine = sent.filter((m) => m.task_id === pushed.task_id);
      return mine.length > 0 ? mine : undefined;
    });
    expect((await call("/v1/processors/pl_switch", { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(200);
    // The message the queue lost comes after all: its claim takes nothing, and a worker leases the task.
    const claim = await namespaceStub(env, t.namespaceId).claim({ task_id: pushed.task_id, attempt: message?.attempt ?? 1 });
    expect(claim.claimed).toBe(false);
    expect((await getTask(t, pushed.task_id)).status).toBe("queued");
    expect((await lease(t, "pl_switch")).map((l) => l.task.task_id)).toEqual([pushed.task_id]);

    const pulledTask = await createTask(t, { task_type: "pl_switch" });
    await advance(t, 1000);
    expect(sent.filter((m) => m.task_id === pulledTask.task_id)).toEqual([]);
    expect((await call("/v1/processors/pl_switch", { token: t.key, method: "PUT", body: { url: "https://processor.test/run" } })).status).toBe(200);
    await eventually(async () => (sent.some((m) => m.task_id === pulledTask.task_id) ? true : undefined), 10_000, "the pulled task to be sent");
  });

  it("gives a pulled type's queued tasks back to the queue when its processor is deleted", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_orphan");
    const task = await createTask(t, { task_type: "pl_orphan" });
    expect((await call("/v1/processors/pl_orphan", { token: t.key, method: "DELETE" })).status).toBe(200);
    // With no handler and no processor left, the consumer's claim fails it instead of leaving it queued forever.
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.error?.code).toBe("no_handler");
  });
});

describe("batched callbacks", () => {
  it("a batch whose admission of the slots it freed throws keeps none of its reports; sent again, they apply and admit", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    await pullProcessor(t, "pl_admit_fail");
    const made: string[] = [];
    for (let i = 0; i < 4; i++) made.push((await createTask(t, { task_type: "pl_admit_fail" })).task_id);
    const leased = await lease(t, "pl_admit_fail", { max_tasks: 10 });
    expect(leased).toHaveLength(2);
    const reports = leased.map((l) => ({ token: l.callback.token, type: "complete" }));
    const admit = vi.spyOn(FairQueue.prototype, "admitRun").mockImplementationOnce(() => {
      throw new Error("admission failed");
    });
    expect((await call("/v1/callbacks", { token: t.key, body: { reports } })).status).toBe(500);
    admit.mockRestore();
    // Nothing of the batch was kept: no slot is freed that nobody fills.
    expect(await Promise.all(made.map(async (id) => (await getTask(t, id)).status))).toEqual(["processing", "processing", "created", "created"]);
    expect((await reportBatch(t, reports)).map((r) => r.status)).toEqual([200, 200]);
    expect(await Promise.all(made.map(async (id) => (await getTask(t, id)).status))).toEqual(["completed", "completed", "queued", "queued"]);
  });

  it("a batch whose end cannot write its deferred rows keeps none of its reports; sent again, they apply", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_step_end");
    for (let i = 0; i < 2; i++) await createTask(t, { task_type: "pl_step_end" });
    const leased = await lease(t, "pl_step_end", { max_tasks: 10 });
    expect(leased).toHaveLength(2);
    const reports = leased.map((l) => ({ token: l.callback.token, type: "complete", outputs: { ok: true } }));
    // The step's end (its events, snapshots and log lines, written together) fails once.
    const end = vi.spyOn(BulkStep.prototype, "end").mockImplementationOnce(() => {
      throw new Error("storage full");
    });
    const refused = await call("/v1/callbacks", { token: t.key, body: { reports } });
    expect(refused.status).toBe(500);
    end.mockRestore();
    for (const l of leased) {
      expect((await getTask(t, l.task.task_id)).status).toBe("processing");
      expect(await query(t, "SELECT seq FROM events WHERE task_id = ? AND event_type = 'task.completed'", l.task.task_id)).toHaveLength(0);
    }
    expect((await reportBatch(t, reports)).map((r) => r.status)).toEqual([200, 200]);
    for (const l of leased) {
      expect((await getTask(t, l.task.task_id)).status).toBe("completed");
      expect(await query(t, "SELECT seq FROM events WHERE task_id = ? AND event_type = 'task.completed'", l.task.task_id)).toHaveLength(1);
    }
  });

  it("fences and applies each report on its own: stale, cancelled, duplicated and unknown tokens fail alone", async () => {
    const t = await tenant();
    const other = await tenant();
    await pullProcessor(t, "pl_batch", 5);
    await pullProcessor(other, "pl_batch");
    const stale = await createTask(t, { task_type: "pl_batch", priority: 9 });
    const [staleLease] = await lease(t, "pl_batch");
    await advance(t, 6_000); // its lease expires: attempt 1 has ended
    const tasks = [];
    for (let i = 0; i < 4; i++) tasks.push(await createTask(t, { task_type: "pl_batch" }));
    const leased = await lease(t, "pl_batch", { max_tasks: 4 });
    expect(leased.map((l) => l.task.task_id)).toEqual(tasks.map((x) => x.task_id));
    const [progressing, cancelled, duplicated, failing] = leased as [Lease, Lease, Lease, Lease];
    await call(`/v1/tasks/${cancelled.task.task_id}/cancel`, { token: t.key, body: {} });
    await createTask(other, { task_type: "pl_batch" });
    const [foreign] = await lease(other, "pl_batch");

    const results = await reportBatch(t, [
      { token: progressing.callback.token, type: "progress", percent: 40, message: "halfway" },
      { token: staleLease?.callback.token, type: "complete", outputs: { late: true } },
      { token: cancelled.callback.token, type: "complete", outputs: { late: true } },
      { token: duplicated.callback.token, type: "complete", outputs: { n: 1 } },
      { token: duplicated.callback.token, type: "complete", outputs: { n: 2 } },
      { token: `${t.namespaceId}.${"x".repeat(43)}`, type: "logs", lines: [{ message: "who am I" }] },
      { token: foreign?.callback.token, type: "complete" },
      { token: progressing.callback.token, type: "logs", lines: [{ level: "warn", message: "still going" }] },
      { token: failing.callback.token, type: "fail", error: { code: "oom", message: "out of memory" }, retryable: false },
    ]);
    expect(results.map((r) => [r.task_id, r.status])).toEqual([
      [progressing.task.task_id, 200],
      [stale.task_id, 409],
      [cancelled.task.task_id, 409],
      [duplicated.task.task_id, 200],
      [duplicated.task.task_id, 409],
      [null, 401],
      [null, 401],
      [progressing.task.task_id, 200],
      [failing.task.task_id, 200],
    ]);
    expect(results[2]?.error).toMatchObject({ type: "conflict", details: { status: "cancelled" } });
    expect(results[0]?.task?.progress).toMatchObject({ percent: 40, message: "halfway" });

    expect(await getTask(t, progressing.task.task_id)).toMatchObject({ status: "processing", progress: { percent: 40 } });
    expect(await getTask(t, stale.task_id)).toMatchObject({ status: "queued", attempt: 2 });
    expect(await getTask(t, cancelled.task.task_id)).toMatchObject({ status: "cancelled", outputs: null });
    expect(await getTask(t, duplicated.task.task_id)).toMatchObject({ status: "completed", outputs: { n: 1 } });
    expect(await getTask(t, failing.task.task_id)).toMatchObject({ status: "failed", error: { code: "oom" } });
    expect((await getTask(other, foreign?.task.task_id ?? "")).status).toBe("processing");
    const events = await query<{ n: number }>(t, "SELECT COUNT(*) AS n FROM events WHERE task_id = ? AND event_type = 'task.completed'", duplicated.task.task_id);
    expect(events[0]?.n).toBe(1);
  });

  it("renews the lease with a progress report, and refuses a malformed batch whole", async () => {
    const t = await tenant();
    await pullProcessor(t, "pl_renew", 10);
    const task = await createTask(t, { task_type: "pl_renew" });
    const [leased] = await lease(t, "pl_renew");
    await advance(t, 8_000);
    const [renewed] = await reportBatch(t, [{ token: leased?.callback.token, type: "progress", percent: 10 }]);
    expect(renewed?.status).toBe(200);
    await advance(t, 8_000); // 16 s after the lease began, 8 s after the renewal
    expect((await getTask(t, task.task_id)).status).toBe("processing");
    for (const reports of [[], [{ token: "x", type: "explode" }], [{ token: "x", type: "progress", percent: 101 }], Array(101).fill({ token: "x", type: "logs", lines: [{ message: "m" }] })]) {
      expect((await call("/v1/callbacks", { token: t.key, body: { reports } })).status).toBe(422);
    }
    expect((await call("/v1/callbacks", { token: null, body: { reports: [{ token: leased?.callback.token, type: "complete" }] } })).status).toBe(401);
    expect((await getTask(t, task.task_id)).status).toBe("processing");
  });
});

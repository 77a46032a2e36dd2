import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { sha256 } from "../src/namespace/attempts";
import type { Task } from "../src/tasks/model";
import { captureSends } from "./counting";
import { PROCESSOR_URL } from "./fake-processor";
import { call, createTask, getTask, stub, tenant, type Tenant } from "./helpers";
import { query } from "./inspect";

/**
 * A batch of claims or reports leaves some writes to its end (Attempts.gathering,
 * FairQueue.releasingMany): the attempts its claims open, the timers of the tasks that end,
 * the slots they give back. These check that the writes are all made, and that an item whose
 * savepoint rolls back takes its own back.
 */

interface Lease {
  task: Task;
  callback: { token: string };
}

async function pullProcessor(t: Tenant, taskType: string) {
  expect((await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
}

async function lease(t: Tenant, taskType: string, maxTasks: number): Promise<Lease[]> {
  const res = await call<{ leases: Lease[] }>(`/v1/processors/${taskType}/lease`, { token: t.key, body: { max_tasks: maxTasks } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.leases;
}

const timersOf = async (t: Tenant, taskId: string) =>
  (await query<{ kind: string }>(t, "SELECT kind FROM timers WHERE task_id = ? ORDER BY kind", taskId)).map((r) => r.kind);

/** Makes the object's `method` (claim or report) of one task throw after all its writes. */
async function failAfterWrites(t: Tenant, method: "claim" | "report", taskId: string): Promise<void> {
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const attempts = (instance as unknown as { attempts: Record<string, (...args: unknown[]) => unknown> }).attempts;
    const original = attempts[method]?.bind(attempts);
    if (!original) throw new Error(`no ${method}`);
    attempts[method] = (...args: unknown[]) => {
      const result = original(...args);
      const id = typeof args[0] === "string" ? args[0] : (args[0] as { task_id: string }).task_id;
      if (id === taskId) throw new Error(`${method} failed after its writes`);
      return result;
    };
  });
}

describe("writes a batch leaves to its end", () => {
  it("a lease of many writes every claim's attempt row and its lease and timeout timers", async () => {
    const t = await tenant();
    await pullProcessor(t, "pg_many");
    const made = await call<{ tasks: Task[] }>("/v1/tasks/batch", { token: t.key, body: { tasks: Array(30).fill({ task_type: "pg_many" }) } });
    expect(made.status).toBe(201);
    const leased = await lease(t, "pg_many", 30);
    expect(leased).toHaveLength(30);
    for (const l of leased) {
      expect(await timersOf(t, l.task.task_id)).toEqual(["lease", "timeout"]);
      // Each timer is due when the task says its lease and its attempt's time end.
      const [due] = await query<{ lease: number; timeout: number; lease_at: number; timeout_at: number }>(
        t,
        `SELECT (SELECT due_at FROM timers WHERE task_id = t.task_id AND kind = 'lease') AS lease, t.lease_expires_at AS lease_at,
                (SELECT due_at FROM timers WHERE task_id = t.task_id AND kind = 'timeout') AS timeout, t.timeout_at AS timeout_at
           FROM tasks t WHERE t.task_id = ?`,
        l.task.task_id,
      );
      expect(due?.lease).toBe(due?.lease_at);
      expect(due?.timeout).toBe(due?.timeout_at);
      const rows = await query<{ task_id: string; attempt: number }>(t, "SELECT task_id, attempt FROM attempts WHERE token_hash = ?", sha256(l.callback.token));
      expect(rows).toEqual([{ task_id: l.task.task_id, attempt: 1 }]);
    }
  });

  it("a batch of queue messages' claims removes each claimed task's send timer; one whose claim throws keeps its own", async () => {
    const t = await tenant();
    await captureSends(t);
    expect((await call("/v1/processors/pg_push", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } })).status).toBe(201);
    const tasks = [];
    for (let i = 0; i < 3; i++) tasks.push(await createTask(t, { task_type: "pg_push" }));
    const [first, failing, last] = tasks.map((task) => task.task_id) as [string, string, string];
    await failAfterWrites(t, "claim", failing);
    const answers = await runInDurableObject(stub(t), (instance: NamespaceDO, state) => {
      // Each task's message is out and its send timer waits (as for the delivery watchdog): the claim removes it.
      for (const taskId of [first, failing, last]) {
        state.storage.sql.exec(
          "INSERT INTO timers (task_id, kind, due_at, tries) VALUES (?, 'send', ?, 0) ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at",
          taskId,
          Date.now() + 60_000,
        );
      }
      return instance.claimMany([first, failing, last].map((taskId) => ({ task_id: taskId, attempt: 1 })));
    });
    expect(answers.map((a) => a.claimed)).toEqual([true, false, true]);
    expect(await timersOf(t, first)).toEqual(["lease", "timeout"]);
    expect(await timersOf(t, failing)).toEqual(["send"]);
    expect(await timersOf(t, last)).toEqual(["lease", "timeout"]);
    expect((await getTask(t, failing)).status).toBe("queued");
  });

  it("a claim that throws in a lease keeps no attempt row and no timer of its own", async () => {
    const t = await tenant();
    await pullProcessor(t, "pg_claim");
    const tasks = [await createTask(t, { task_type: "pg_claim" }), await createTask(t, { task_type: "pg_claim" }), await createTask(t, { task_type: "pg_claim" })];
    const broken = tasks[1]?.task_id ?? "";
    await failAfterWrites(t, "claim", broken);
    const leased = await lease(t, "pg_claim", 10);
    expect(leased.map((l) => l.task.task_id)).toEqual([tasks[0]?.task_id, tasks[2]?.task_id]);
    expect(await query(t, "SELECT attempt FROM attempts WHERE task_id = ?", broken)).toEqual([]);
    expect(await timersOf(t, broken)).toEqual([]);
    for (const l of leased) expect(await timersOf(t, l.task.task_id)).toEqual(["lease", "timeout"]);
  });

  it("a report that throws in a batch keeps its task's timers and slot; the others give theirs back, and admission fills them", async () => {
    const t = await tenant({ max_concurrent_per_key: 3 });
    await pullProcessor(t, "pg_report");
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await createTask(t, { task_type: "pg_report", concurrency_key: "k" })).task_id);
    const leased = await lease(t, "pg_report", 10);
    expect(leased).toHaveLength(3);
    const broken = leased[1]?.task.task_id ?? "";
    await failAfterWrites(t, "report", broken);
    const res = await call("/v1/callbacks", { token: t.key, body: { reports: leased.map((l) => ({ token: l.callback.token, type: "complete" })) } });
    expect(res.status).toBe(500);
    expect((await getTask(t, broken)).status).toBe("processing");
    expect(await timersOf(t, broken)).toEqual(["lease", "timeout"]);
    for (const l of [leased[0], leased[2]]) expect(await timersOf(t, l?.task.task_id ?? "")).toEqual([]);
    // Two slots of "k" given back and filled again: the one still processing and the two admitted hold it.
    expect(await Promise.all(made.map(async (id) => (await getTask(t, id)).status))).toEqual(["completed", "processing", "completed", "queued", "queued"]);
    expect(await query(t, "SELECT active FROM fair_keys WHERE key = 'k'")).toEqual([{ active: 3 }]);
  });

  it("a completion that throws in a batch frees no place under max_unfinished_tasks: what it told the object goes with it", async () => {
    const t = await tenant({ max_unfinished_tasks: 3 });
    await pullProcessor(t, "pg_quota");
    for (let i = 0; i < 3; i++) await createTask(t, { task_type: "pg_quota" });
    const leased = await lease(t, "pg_quota", 3);
    const [done, broken] = leased.map((l) => l.task.task_id) as [string, string];
    await failAfterWrites(t, "report", broken);
    const res = await call("/v1/callbacks", { token: t.key, body: { reports: leased.slice(0, 2).map((l) => ({ token: l.callback.token, type: "complete" })) } });
    expect(res.status).toBe(500);
    expect([(await getTask(t, done)).status, (await getTask(t, broken)).status]).toEqual(["completed", "processing"]);
    // Two unfinished, so one more fits, and the next does not.
    const create = () => call("/v1/tasks", { token: t.key, body: { task_type: "pg_quota" } });
    expect((await create()).status).toBe(201);
    const beyond = await create();
    expect(beyond.status, JSON.stringify(beyond.body)).toBe(409);
    expect(await query(t, "SELECT COUNT(*) AS n FROM tasks WHERE status IN ('created', 'queued', 'processing')")).toEqual([{ n: 3 }]);
  });
});

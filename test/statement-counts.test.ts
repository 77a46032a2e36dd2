import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import type { Sql } from "../src/namespace/sql";
import { namespaceStub } from "../src/namespace/stub";
import { captureSends } from "./counting";
import { PROCESSOR_URL } from "./fake-processor";
import { call, createTask, stub, tenant, type Tenant } from "./helpers";

/**
 * Counts, not times: the SQLite statements the namespace's object runs for one task of a push
 * processor, created alone and completed by its callback (issue 11: the object's CPU a task is
 * mostly its statements). Printed for the report, and bounded so that a change that adds
 * statements to these paths is seen.
 */

/** From now on, counts the statements the object runs; its alarm stays off, so only the calls made count. */
async function countStatements(t: Tenant): Promise<() => number> {
  const counted = { n: 0 };
  await runDurableObjectAlarm(stub(t));
  await runInDurableObject(stub(t), (instance: NamespaceDO, state) => {
    state.storage.setAlarm = async () => undefined;
    const sql = (instance as unknown as { core: { sql: Sql } }).core.sql;
    const all = sql.all.bind(sql);
    const run = sql.run.bind(sql);
    sql.all = (...args) => (counted.n++, all(...args));
    sql.run = (...args) => (counted.n++, run(...args));
  });
  return () => {
    const n = counted.n;
    counted.n = 0;
    return n;
  };
}

describe("statements a push task costs the object", () => {
  it("a create admitted at once, then its completion", async () => {
    const t = await tenant({ max_concurrent_tasks: 10 });
    await captureSends(t);
    expect((await call("/v1/processors/counted_push", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } })).status).toBe(201);
    // The first create reads what the object keeps cached after (the processor, the unfinished count).
    await createTask(t, { task_type: "counted_push" });
    const object = namespaceStub(env, t.namespaceId);
    const take = await countStatements(t);

    // Through the object's own call, not HTTP: a request's rate-limit grant (asked of the object
    // when the Worker's lease of tokens has run out, a matter of timing) is not the create's cost.
    // The fewest of five, so that nothing else the object happens to run meanwhile counts.
    const creates: number[] = [];
    const tasks = [];
    for (let i = 0; i < 5; i++) {
      const made = await object.createTask({ task_type: "counted_push" }, "http://localhost");
      creates.push(take());
      if (!made.ok) throw new Error(`not created: ${JSON.stringify(made)}`);
      expect(made.value.status).toBe("queued");
      tasks.push(made.value);
    }
    const create = Math.min(...creates);

    const claims = await object.claimMany(tasks.map((task) => ({ task_id: task.task_id, attempt: 1 })));
    take();
    const reports: number[] = [];
    for (const [i, claim] of claims.entries()) {
      if (!claim?.claimed) throw new Error(`not claimed: ${JSON.stringify(claim)}`);
      const done = await object.report(tasks[i]!.task_id, claim.token, { kind: "complete", outputs: {} });
      reports.push(take());
      expect(done.ok && done.value.status).toBe("completed");
    }
    const report = Math.min(...reports);

    // 23 and 13 before issue 11's session of 2026-12-02 (a second fair-queue read, a count-down, a nextDue, per-row flush asks);
    // 21 and 11 before its next session: a task a slot waits for no longer passes through the fair
    // queue, a step's events, lines and marks are one statement a kind however few they are, and
    // keyless tasks' slots are not counted.
    // The completion reads its token's attempt and the task in two statements, not one join: the
    // same read serves a batch of reports, where the join's copy of every task column cost more.
    console.log(`[statement counts] create ${creates.join(", ")}; completion ${reports.join(", ")}`);
    expect(create).toBeLessThanOrEqual(10);
    expect(report).toBeLessThanOrEqual(10);
  });

  it("a completion that carries its handler's last log lines writes its task's row once", async () => {
    const t = await tenant({ max_concurrent_tasks: 10 });
    await captureSends(t);
    expect((await call("/v1/processors/counted_lines", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } })).status).toBe(201);
    await createTask(t, { task_type: "counted_lines" });
    const task = await createTask(t, { task_type: "counted_lines" });
    const object = namespaceStub(env, t.namespaceId);
    const [claim] = await object.claimMany([{ task_id: task.task_id, attempt: 1 }]);
    if (!claim?.claimed) throw new Error(`not claimed: ${JSON.stringify(claim)}`);
    const updates: string[] = [];
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      const sql = (instance as unknown as { core: { sql: Sql } }).core.sql;
      const run = sql.run.bind(sql);
      sql.run = (query, ...params) => (/^\s*UPDATE tasks\b/.test(query) && updates.push(query), run(query, ...params));
    });
    const lines = [{ message: "read 3 files" }, { level: "warn" as const, message: "one was empty" }];
    const done = await object.report(task.task_id, claim.token, { kind: "complete", outputs: {}, lines });
    expect(done.ok && done.value.status).toBe("completed");
    expect(updates).toHaveLength(1);
    // The lines, then the transition's own line: each under a number of its own (a line stored
    // under a number already taken would replace the earlier one in D1).
    const logs = await call<{ results: { level: string; message: string }[] }>(`/v1/tasks/${task.task_id}/logs`, { token: t.key });
    expect(logs.body.results.slice(-3).map((l) => l.message.slice(0, 13))).toEqual(["read 3 files", "one was empty", "processing → "]);
    expect(logs.body.results.map((l) => l.message)).toEqual([...new Set(logs.body.results.map((l) => l.message))]);
  });
});

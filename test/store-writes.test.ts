import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { call, stub, tenant, type Tenant } from "./helpers";
import { advance } from "./inspect";

/**
 * Counts, not times (issue 11): what the object's SQLite writes for each task, in statements and
 * in rows (SQLite's own count: a row of a table and each index entry it adds or changes count
 * one each, so this is the B-tree writes the mechanism pays). Every path that creates or moves a
 * task pays these, so they are bounded here, and printed for the report.
 */

const TASKS = 500;

interface Written {
  statements: number;
  rows: number;
  /** Parameters bound: the object pays for each (see NullsInline in task-row.ts). */
  params: number;
  /** Characters of text bound: what the rows carry (a task's JSON, once in its event). */
  chars: number;
  byQuery: Map<string, { statements: number; rows: number; params: number }>;
}

/** Wraps the object's SQL so that each statement and the rows it wrote are counted. */
async function countWrites(t: Tenant): Promise<{ take(): Written }> {
  let cursors: { key: string; params: number; chars: number; cursor: SqlStorageCursor<Record<string, SqlStorageValue>> }[] = [];
  await runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
    const sql = state.storage.sql;
    const exec = sql.exec.bind(sql);
    sql.exec = ((query: string, ...params: SqlStorageValue[]) => {
      const cursor = exec(query, ...params);
      cursors.push({ key: query.replace(/\s+/g, " ").trim().slice(0, 50), params: params.length, chars: params.reduce<number>((n, p) => n + (typeof p === "string" ? p.length : 0), 0), cursor });
      return cursor;
    }) as typeof sql.exec;
  });
  return {
    // Read once the statements ran: a cursor knows its rows written when it has been read through.
    take() {
      const written: Written = { statements: 0, rows: 0, params: 0, chars: 0, byQuery: new Map() };
      for (const { key, params, chars, cursor } of cursors) {
        const entry = written.byQuery.get(key) ?? { statements: 0, rows: 0, params: 0 };
        entry.statements++;
        entry.rows += cursor.rowsWritten;
        entry.params += params;
        written.byQuery.set(key, entry);
        written.statements++;
        written.rows += cursor.rowsWritten;
        written.params += params;
        written.chars += chars;
      }
      cursors = [];
      return written;
    },
  };
}

async function post<T>(t: Tenant, path: string, body: unknown): Promise<T> {
  const res = await call<T>(path, { token: t.key, method: "POST", body });
  expect(res.status, path).toBeLessThan(300);
  return res.body;
}

/** Runs the object's alarm until its outbox is empty. */
async function flushAll(t: Tenant): Promise<void> {
  for (let i = 0; i < 30; i++) {
    await advance(t, 1000);
    const left = await runInDurableObject(stub(t), (_instance: NamespaceDO, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM record_outbox) AS n").one().n,
    );
    if (left === 0) return;
  }
  throw new Error("the outbox never emptied");
}

const perTask = (w: Written) => ({
  statements: +(w.statements / TASKS).toFixed(2),
  rows: +(w.rows / TASKS).toFixed(2),
  params: +(w.params / TASKS).toFixed(1),
  chars: Math.round(w.chars / TASKS),
});
const top = (w: Written) =>
  [...w.byQuery]
    .sort((a, b) => b[1].rows + b[1].params / 4 - (a[1].rows + a[1].params / 4))
    .slice(0, 16)
    .map(([q, c]) => `  ${(c.rows / TASKS).toFixed(2)} rows, ${(c.params / TASKS).toFixed(1)} params, ${(c.statements / TASKS).toFixed(2)} st  ${q}`)
    .join("\n");
const hundred = (type: string) => ({ tasks: Array.from({ length: 100 }, (_, i) => ({ task_type: type, inputs: { i } })) });

describe("the object's SQLite writes per task", () => {
  it("a created task, its flush to D1, and a task's whole life through a pull worker", async () => {
    // Created and left waiting: one slot, so the batches' tasks stay created.
    const waiting = await tenant({ max_concurrent_tasks: 1 });
    expect((await call("/v1/processors/sw_hold", { token: waiting.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
    const created = await countWrites(waiting);
    for (let i = 0; i < TASKS / 100; i++) await post(waiting, "/v1/tasks/batch", hundred("sw_hold"));
    const create = created.take();
    await flushAll(waiting);
    const createFlush = created.take();

    // A whole life: created, queued, leased (processing), completed, flushed and evicted.
    const life = await tenant({ max_concurrent_tasks: 1000 });
    expect((await call("/v1/processors/sw_pull", { token: life.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
    const lived = await countWrites(life);
    for (let i = 0; i < TASKS / 100; i++) await post(life, "/v1/tasks/batch", hundred("sw_pull"));
    for (let i = 0; i < TASKS / 100; i++) {
      const { leases } = await post<{ leases: { callback: { token: string } }[] }>(life, "/v1/processors/sw_pull/lease", { max_tasks: 100 });
      expect(leases).toHaveLength(100);
      const { results } = await post<{ results: { status: number; task: Task }[] }>(life, "/v1/callbacks", {
        reports: leases.map((l) => ({ token: l.callback.token, type: "complete", outputs: { ok: true } })),
      });
      expect(results.every((r) => r.status === 200)).toBe(true);
    }
    await flushAll(life);
    const whole = lived.take();
    const left = await runInDurableObject(stub(life), (_i: NamespaceDO, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM tasks").one().n);
    expect(left).toBe(0);

    console.log(`batch create, per task: ${JSON.stringify(perTask(create))}\n${top(create)}`);
    console.log(`its flush, per task: ${JSON.stringify(perTask(createFlush))}\n${top(createFlush)}`);
    console.log(`a whole pull life, per task: ${JSON.stringify(perTask(whole))}\n${top(whole)}`);
    // Before the record outbox kept marks instead of snapshots: 16.18 rows a created task, 61.49
    // over a whole life, and each change bound its task's JSON twice (its event and its
    // snapshot): 1 811 and 6 914 characters bound; before nulls were written as NULL: 38.2 and
    // 128.8 parameters.
    expect(create.rows / TASKS).toBeLessThanOrEqual(15.5);
    expect(create.params / TASKS).toBeLessThanOrEqual(29);
    expect(whole.params / TASKS).toBeLessThanOrEqual(108);
    expect(create.chars / TASKS).toBeLessThanOrEqual(1400);
    expect(whole.chars / TASKS).toBeLessThanOrEqual(5600);
  });
});

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { getRecord } from "../src/db/records";
import { readLogs } from "../src/db/logs";
import type { NamespaceDO } from "../src/namespace/do";
import { migrate } from "../src/namespace/schema";
import { Sql } from "../src/namespace/sql";
import type { Task } from "../src/tasks/model";
import { call, createTask, stub, tenant, type Tenant } from "./helpers";
import { advance, query } from "./inspect";

/**
 * The record outbox keeps which tasks changed (task, version, queue position at the change) and
 * the flush builds each record from the task's row.
 */

/** Runs the object's alarm until both outboxes are empty. */
async function flushAll(t: Tenant): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await advance(t, 1000);
    const [left] = await query<{ n: number }>(t, "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM record_outbox) AS n");
    if (left?.n === 0) return;
  }
  throw new Error("the outbox never emptied");
}

/** A namespace of one slot, taken by a pull task that nobody leases: every later task stays created. */
async function fullNamespace(type: string): Promise<{ t: Tenant; first: Task }> {
  const t = await tenant({ max_concurrent_tasks: 1 });
  expect((await call(`/v1/processors/${type}`, { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
  const first = await createTask(t, { task_type: type });
  expect(first.status).toBe("queued");
  return { t, first };
}

describe("records built from task rows at the flush", () => {
  it("keeps the mark and the row of a task that changed while its record was on its way to D1", async () => {
    const { t } = await fullNamespace("ro_race");
    const task = await createTask(t, { task_type: "ro_race" });
    const seen = await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
      const rows = (sql: string) => state.storage.sql.exec(sql, task.task_id).toArray();
      // D1 holds the round that carries the created record until the task has been cancelled;
      // the next round's write shows what the first left behind.
      let release = (): void => undefined;
      let calls = 0;
      let left: { mark: unknown[]; row: unknown[] } | null = null;
      const batch = instance.io.d1Batch;
      instance.io.d1Batch = async (statements) => {
        calls++;
        if (calls === 1) await new Promise<void>((resolve) => (release = resolve));
        else left ??= { mark: rows("SELECT version FROM record_outbox WHERE task_id = ?"), row: rows("SELECT status, version FROM tasks WHERE task_id = ?") };
        return batch(statements);
      };
      instance.clock.advance(1000);
      const alarm = instance.alarm();
      while (calls === 0) await new Promise((r) => setTimeout(r, 1));
      const cancelled = await instance.cancelTask(task.task_id);
      release();
      await alarm;
      for (let i = 0; i < 5 && left === null; i++) {
        instance.clock.advance(1000);
        await instance.alarm();
      }
      instance.io.d1Batch = batch;
      return { cancelled: cancelled.ok && cancelled.value.status, left };
    });
    // The first round wrote version 1; the mark of version 2 stayed for the next round, and the
    // finished row was not evicted at a version D1 had not got.
    expect(seen).toEqual({ cancelled: "cancelled", left: { mark: [{ version: 2 }], row: [{ status: "cancelled", version: 2 }] } });
    await flushAll(t);
    expect((await getRecord(env.DB, t.namespaceId, task.task_id))?.status).toBe("cancelled");
    expect(await query(t, "SELECT task_id FROM tasks WHERE task_id = ?", task.task_id)).toEqual([]);
  });

  it("are the task as its last change showed it, with the queue position it had then", async () => {
    const { t, first } = await fullNamespace("ro_hold");
    const low = await createTask(t, { task_type: "ro_hold", inputs: { text: "\"é\" \\ ✓" } });
    // Goes ahead of `low`, whose record keeps the position `low` had when it changed last.
    const high = await createTask(t, { task_type: "ro_hold", priority: 9 });
    const batch = await call<{ tasks: Task[] }>("/v1/tasks/batch", {
      token: t.key,
      body: { tasks: [0, 1, 2].map((n) => ({ task_type: "ro_hold", inputs: { n }, parent_task_id: first.task_id })) },
    });
    expect(batch.status).toBe(201);
    expect([low, high, ...batch.body.tasks].map((x) => x.queue_position)).toEqual([1, 1, 3, 4, 5]);
    await flushAll(t);
    for (const task of [first, low, high, ...batch.body.tasks]) {
      expect(await getRecord(env.DB, t.namespaceId, task.task_id)).toEqual({ ...task, waiting: null });
    }
    const stored = await env.DB.prepare("SELECT seq, status, parent_task_id, version FROM task_records WHERE task_id = ?").bind(batch.body.tasks[1]!.task_id).first();
    expect(stored).toMatchObject({ status: "created", parent_task_id: first.task_id, version: 1 });
  });

  it("clears a mark whose task row is gone instead of holding the outbox forever", async () => {
    const t = await tenant();
    await runInDurableObject(stub(t), async (_i: NamespaceDO, state) => {
      state.storage.sql.exec("INSERT INTO record_outbox (task_id, version, queue_position) VALUES ('tsk_gone', 3, NULL)");
      state.storage.sql.exec("INSERT INTO timers (task_id, kind, due_at) VALUES ('', 'flush', 0) ON CONFLICT DO NOTHING");
      await state.storage.setAlarm(Date.now());
    });
    await flushAll(t);
    expect(await getRecord(env.DB, t.namespaceId, "tsk_gone")).toBeNull();
  });

  it("migration 10 turns the pending snapshots an older version left into marks", async () => {
    const { t } = await fullNamespace("ro_migrate");
    // D1 takes nothing until the table is as an older version left it, holding its snapshot.
    let d1Batch: NamespaceDO["io"]["d1Batch"] | undefined;
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      d1Batch = instance.io.d1Batch;
      instance.io.d1Batch = async () => {
        throw new Error("D1 unavailable");
      };
    });
    const task = await createTask(t, { task_type: "ro_migrate" });
    await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
      if (d1Batch) instance.io.d1Batch = d1Batch;
      const sql = state.storage.sql;
      // The table as migration 2 left it, holding what an older version wrote.
      sql.exec("DROP TABLE record_outbox");
      sql.exec("CREATE TABLE record_outbox (task_id TEXT PRIMARY KEY, version INTEGER NOT NULL, payload TEXT NOT NULL)");
      const snapshot = JSON.stringify({ seq: 2, expires_at: null, task: { ...task, queue_position: 7 } });
      sql.exec("INSERT INTO record_outbox (task_id, version, payload) VALUES (?, 1, ?)", task.task_id, snapshot);
      sql.exec("DELETE FROM _schema_migrations WHERE id = 10");
      migrate(new Sql(sql), state.storage);
      sql.exec("INSERT INTO timers (task_id, kind, due_at) VALUES ('', 'flush', 0) ON CONFLICT DO NOTHING");
      await state.storage.setAlarm(Date.now());
    });
    expect(await query(t, "SELECT task_id, version, queue_position FROM record_outbox")).toEqual([{ task_id: task.task_id, version: 1, queue_position: 7 }]);
    await flushAll(t);
    expect(await getRecord(env.DB, t.namespaceId, task.task_id)).toEqual({ ...task, waiting: null, queue_position: 7 });
    const lines = await readLogs(env.DB, t.namespaceId, task.task_id, 0, 10, 0);
    expect(lines.map((l) => l.message)).toEqual(["created (ro_migrate, priority 5)"]);
  });
});

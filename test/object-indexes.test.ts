import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { stub, tenant } from "./helpers";

/** The query plan of `sql` inside a namespace's object, one line a step. */
async function plan(sql: string, ...params: SqlStorageValue[]): Promise<string[]> {
  const t = await tenant();
  return runInDurableObject(stub(t), (_instance: NamespaceDO, state) =>
    state.storage.sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, ...params).toArray().map((r) => r.detail),
  );
}

describe("the object's indexes (schema migrations 7, 8 and 10)", () => {
  it("reads the queued tasks of a type through the partial by-type index", async () => {
    const lease = await plan(
      `SELECT task_id, attempt FROM tasks
        WHERE task_type = ? AND status = 'queued'
          AND NOT EXISTS (SELECT 1 FROM timers WHERE timers.task_id = tasks.task_id AND timers.kind = 'send' AND timers.due_at > ?)
        ORDER BY priority DESC, seq ASC LIMIT ?`,
      "t", 0, 10,
    );
    expect(lease[0]).toMatch(/^SEARCH tasks USING INDEX tasks_queued_by_type \(task_type=\?\)$/);
    // Ordered by the index: no sort of the queued tasks.
    expect(lease.join("\n")).not.toMatch(/TEMP B-TREE/);
    const withoutSend = await plan(
      `SELECT task_id FROM tasks WHERE task_type = ? AND status = 'queued'
         AND NOT EXISTS (SELECT 1 FROM timers WHERE timers.task_id = tasks.task_id AND timers.kind = 'send')`,
      "t",
    );
    expect(withoutSend[0]).toMatch(/^SEARCH tasks USING INDEX tasks_queued_by_type/);
    // Claim-ahead's join reaches tasks through an index too (queued tasks are few).
    const ahead = await plan(
      `SELECT t.task_id, t.attempt FROM timers tm JOIN tasks t ON t.task_id = tm.task_id
        WHERE tm.kind = 'send' AND tm.due_at <= ? AND t.status = 'queued' AND t.task_type IN (SELECT value FROM json_each(?))
        ORDER BY tm.due_at LIMIT ?`,
      0, "[]", 10,
    );
    expect(ahead.filter((step) => /^SCAN (t|tasks)\b/.test(step))).toEqual([]);
  });

  it("finds an event by id and a task's events without a scan, and prunes from the oldest by seq", async () => {
    expect(await plan("SELECT data FROM events WHERE event_id = ?", "evt_x")).toEqual([expect.stringMatching(/^SEARCH events USING INDEX/)]);
    expect((await plan("SELECT seq FROM events WHERE task_id IS NOT NULL AND task_id = ? AND seq > ? ORDER BY seq LIMIT 100", "tsk_x", 0))[0]).toMatch(
      /^SEARCH events USING (COVERING )?INDEX events_task/,
    );
    const prune = await plan(
      "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, created_at FROM events ORDER BY seq LIMIT ?) WHERE created_at < ?)",
      250, 0,
    );
    expect(prune[0]).toMatch(/^SEARCH events USING INTEGER PRIMARY KEY/);
    const names = await runInDurableObject(stub(await tenant()), (_i: NamespaceDO, state) =>
      state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('tasks', 'events') ORDER BY name").toArray().map((r) => r.name),
    );
    expect(names).not.toContain("events_created");
    expect(names).not.toContain("tasks_by_type");
    expect(names).toContain("tasks_queued_by_type");
  });

  it("reaches the record outbox through its key: the records a flush builds and the marks it clears (migration 10)", async () => {
    const clearMarks = await plan("DELETE FROM record_outbox WHERE (task_id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))", "[]");
    expect(clearMarks[0]).toMatch(/^SEARCH record_outbox USING PRIMARY KEY \(task_id=\?\)$/);
    // The records a flush builds: each mark's task row found through the task id.
    const pending = await plan(
      `SELECT r.task_id AS pending_id, r.version AS pending_version, r.queue_position AS pending_position, t.*
         FROM record_outbox r LEFT JOIN tasks t ON t.task_id = r.task_id LIMIT ?`,
      100,
    );
    expect(pending).toEqual(["SCAN r", expect.stringMatching(/^SEARCH t USING INDEX sqlite_autoindex_tasks_1 \(task_id=\?\)/)]);
  });
});

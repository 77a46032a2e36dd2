import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { migrate } from "../src/namespace/schema";
import { Sql } from "../src/namespace/sql";
import { stub, tenant } from "./helpers";
import { query } from "./inspect";

/** An object as an older version left it, taken through the migrations added since. */
describe("schema upgrades of a namespace's object", () => {
  it("migrations 11 and 12: the keyless slot count goes, timers keep every row in a table without a rowid", async () => {
    const t = await tenant();
    const timers = [
      { task_id: "", kind: "flush", due_at: 5, tries: 0 },
      { task_id: "tsk_a", kind: "lease", due_at: 7, tries: 0 },
      { task_id: "tsk_a", kind: "timeout", due_at: 9, tries: 2 },
    ];
    await runInDurableObject(stub(t), (_i: NamespaceDO, state) => {
      const sql = state.storage.sql;
      // The timers table as migration 3 left it, and the keyless row slots() used to keep.
      sql.exec("DROP TABLE timers");
      sql.exec(`CREATE TABLE timers (task_id TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('send','lease','timeout','flush','progress')),
        due_at INTEGER NOT NULL, tries INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (task_id, kind))`);
      sql.exec("CREATE INDEX timers_due ON timers (due_at)");
      for (const r of timers) sql.exec("INSERT INTO timers (task_id, kind, due_at, tries) VALUES (?, ?, ?, ?)", r.task_id, r.kind, r.due_at, r.tries);
      sql.exec("INSERT INTO fair_keys (key, active) VALUES ('', 4), ('k', 2)");
      sql.exec("DELETE FROM _schema_migrations WHERE id IN (11, 12)");
      migrate(new Sql(sql), state.storage);
    });
    expect(await query(t, "SELECT task_id, kind, due_at, tries FROM timers ORDER BY due_at")).toEqual(timers);
    const [table] = await query<{ sql: string }>(t, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'timers'");
    expect(table?.sql).toMatch(/WITHOUT ROWID$/);
    expect(await query(t, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'timers'")).toEqual([{ name: "timers_due" }]);
    expect(await query(t, "SELECT key, active FROM fair_keys")).toEqual([{ key: "k", active: 2 }]);
  });
});

import { mapPage, newestFirst, type Page, type PageRequest } from "../db/keyset";
import { fail, ok, type Result } from "../errors";
import { newSigningSecret } from "../ids";
import { iso } from "../time";
import type { ProcessorConfig, ProcessorMode, ProcessorPosition } from "./contract";
import { quotaExceeded } from "./limits";
import { type Sql, sqlPage } from "./sql";

export type ProcessorRow = {
  task_type: string;
  mode: ProcessorMode;
  /** '' for a pull processor. */
  url: string;
  lease_seconds: number;
  secret: string;
  created_at: number;
  updated_at: number;
};

/**
 * The namespace's processors over the Durable Object's SQLite. They are read on every create
 * and claim, so rows are cached; the cache is dropped on every change.
 */
export class ProcessorStore {
  private processorCache = new Map<string, ProcessorRow | null>();

  constructor(private readonly sql: Sql) {}

  processorRow(taskType: string): ProcessorRow | null {
    let row = this.processorCache.get(taskType);
    if (row === undefined) {
      row = this.sql.one<ProcessorRow>("SELECT * FROM processors WHERE task_type = ?", taskType);
      this.processorCache.set(taskType, row);
    }
    return row;
  }

  private toProcessor(row: ProcessorRow): ProcessorConfig {
    return {
      task_type: row.task_type,
      mode: row.mode,
      url: row.mode === "pull" ? null : row.url,
      lease_seconds: row.lease_seconds,
      created_at: iso(row.created_at) ?? "",
      updated_at: iso(row.updated_at) ?? "",
    };
  }

  /** Creates or replaces a processor; its secret is made once and returned only then. Call it in a transaction. */
  put(taskType: string, url: string | null, leaseSeconds: number, mode: ProcessorMode, quota: number, now: number): Result<{ processor: ProcessorConfig; secret: string | null }> {
    this.processorCache.clear();
    const existing = this.processorRow(taskType);
    if (!existing && this.sql.count("SELECT COUNT(*) AS n FROM processors") >= quota) return quotaExceeded("max_processors", quota, "processors");
    const secret = existing ? null : newSigningSecret();
    if (existing) {
      this.sql.run("UPDATE processors SET url = ?, lease_seconds = ?, mode = ?, updated_at = ? WHERE task_type = ?", url ?? "", leaseSeconds, mode, now, taskType);
    } else {
      this.sql.run(
        "INSERT INTO processors (task_type, url, lease_seconds, secret, mode, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        taskType, url ?? "", leaseSeconds, secret, mode, now, now,
      );
    }
    this.processorCache.clear();
    const row = this.processorRow(taskType);
    if (!row) throw new Error("processor vanished after write");
    return ok({ processor: this.toProcessor(row), secret });
  }

  get(taskType: string): Result<ProcessorConfig> {
    const row = this.processorRow(taskType);
    return row ? ok(this.toProcessor(row)) : fail("not_found", `no processor for task_type "${taskType}"`);
  }

  /** A page of processors, newest first, by keyset in this storage. */
  list(req: PageRequest<ProcessorPosition>): Page<ProcessorConfig, ProcessorPosition> {
    const list = newestFirst({ select: "*", from: "processors" }, {}, ["created_at", "task_type"], (row: ProcessorRow): ProcessorPosition => [row.created_at, row.task_type]);
    return mapPage(sqlPage(this.sql, list, req), (row) => this.toProcessor(row));
  }

  remove(taskType: string): boolean {
    this.processorCache.clear();
    return this.sql.run("DELETE FROM processors WHERE task_type = ?", taskType) > 0;
  }
}

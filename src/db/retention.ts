import { purgeDeliveries } from "./deliveries";
import { purgeKeys } from "./idempotency";
import { purgeLogs } from "./logs";
import { purgeStaging } from "./staging";
import { config } from "../config";

export interface PurgeLimits {
  /** Rows one DELETE statement removes at most. */
  batch: number;
  /** DELETE statements one run issues at most, over all tables: D1 counts each as a subrequest. */
  statements: number;
}

/** Well inside D1's per-invocation limits (1 000 subrequests, 30 s a query) whatever has piled up. */
export const DEFAULT_PURGE_LIMITS: PurgeLimits = { batch: 2000, statements: 60 };

export interface PurgeResult {
  records: number;
  logs: number;
  idempotency_keys: number;
  deliveries: number;
  /** Staged batch-import rows left behind by a finished or long-dead import. */
  staging: number;
  /** False when the run stopped at its limit with rows left for the next run. */
  complete: boolean;
}

/**
 * The cron's retention purge: task records past their `expires_at` (set only once a task is
 * terminal, so a live task is never purged), log lines older than TASK_LOG_RETENTION_SECONDS,
 * expired idempotency keys, and webhook delivery records as old as purged log lines. Bounded per run; what is left waits for the next run.
 * Then the staging of batch imports that has outlived its task (the outbox flush removes it as
 * the task ends; this catches what that missed), in one batch of its own.
 */
export async function runRetention(env: Env, now: number, limits: PurgeLimits = DEFAULT_PURGE_LIMITS): Promise<PurgeResult> {
  const logCutoff = now - config(env).logRetentionMs;
  const tables: { name: keyof Omit<PurgeResult, "complete" | "staging">; purge: () => Promise<number> }[] = [
    { name: "records", purge: () => purgeRecords(env.DB, now, limits.batch) },
    { name: "logs", purge: () => purgeLogs(env.DB, logCutoff, limits.batch) },
    { name: "idempotency_keys", purge: () => purgeKeys(env.DB, now, limits.batch) },
    { name: "deliveries", purge: () => purgeDeliveries(env.DB, logCutoff, limits.batch) },
  ];
  const result: PurgeResult = { records: 0, logs: 0, idempotency_keys: 0, deliveries: 0, staging: 0, complete: true };
  // Every table gets at least one statement a run, so no table can starve behind the others.
  const budget = Math.max(limits.statements, tables.length);
  let statements = 0;
  for (const [index, table] of tables.entries()) {
    const allowance = budget - statements - (tables.length - 1 - index);
    let done = false;
    for (let i = 0; i < allowance && !done; i++) {
      statements++;
      const deleted = await table.purge();
      result[table.name] += deleted;
      done = deleted < limits.batch;
    }
    if (!done) result.complete = false;
  }
  const recordCutoff = now - config(env).recordRetentionMs;
  const staging = await purgeStaging(env.DB, recordCutoff, limits.batch);
  result.staging = staging.removed;
  if (!staging.complete) result.complete = false;
  return result;
}

async function purgeRecords(db: D1Database, now: number, limit: number): Promise<number> {
  const result = await db
    .prepare(
      `DELETE FROM task_records WHERE task_id IN
         (SELECT task_id FROM task_records WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)`,
    )
    .bind(now, limit)
    .run();
  return result.meta.changes ?? 0;
}

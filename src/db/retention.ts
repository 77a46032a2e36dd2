import { purgeLogs } from "./logs";

/** Rows one cron run deletes at most per table, to stay inside D1's per-invocation limits. */
const PURGE_BATCH = 5000;
const PURGE_ROUNDS = 10;

/** The cron's retention purge: log lines older than TASK_LOG_RETENTION_SECONDS. */
export async function runRetention(env: Env, now: number): Promise<{ logs: number }> {
  const cutoff = now - Number(env.TASK_LOG_RETENTION_SECONDS || 604800) * 1000;
  let logs = 0;
  for (let round = 0; round < PURGE_ROUNDS; round++) {
    const deleted = await purgeLogs(env.DB, cutoff, PURGE_BATCH);
    logs += deleted;
    if (deleted < PURGE_BATCH) break;
  }
  return { logs };
}

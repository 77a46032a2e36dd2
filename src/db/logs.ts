import type { NumberedLogLine } from "../namespace/do";
import type { LogLevel } from "../tasks/model";

/** A task's log lines after `afterSeq` and not older than `cutoffMs`, oldest first. */
export async function readLogs(
  db: D1Database,
  namespaceId: string,
  taskId: string,
  afterSeq: number,
  limit: number,
  cutoffMs: number,
): Promise<NumberedLogLine[]> {
  const { results } = await db
    .prepare(
      `SELECT seq, timestamp, level, message, attempt FROM task_logs
       WHERE task_id = ? AND namespace_id = ? AND seq > ? AND written_at >= ? ORDER BY seq LIMIT ?`,
    )
    .bind(taskId, namespaceId, afterSeq, cutoffMs, limit)
    .all<{ seq: number; timestamp: string; level: LogLevel; message: string; attempt: number }>();
  return results;
}

/** Deletes up to `limit` log lines written before `cutoffMs`; returns how many went. */
export async function purgeLogs(db: D1Database, cutoffMs: number, limit: number): Promise<number> {
  const result = await db
    .prepare(
      `DELETE FROM task_logs WHERE rowid IN (SELECT rowid FROM task_logs WHERE written_at < ? ORDER BY written_at LIMIT ?)`,
    )
    .bind(cutoffMs, limit)
    .run();
  return result.meta.changes ?? 0;
}

import { iso } from "../time";
import type { LogLevel } from "../tasks/model";
import type { LogPayload, NumberedLogLine } from "./types";

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

/** D1 binds at most 100 parameters a statement; a line takes 8. */
const LINES_PER_STATEMENT = 12;

/** Inserts of log lines, several a statement; (task_id, seq) makes a replay change nothing. */
export function logInserts(db: D1Database, namespaceId: string, lines: { task_id: string; line: LogPayload }[]): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < lines.length; i += LINES_PER_STATEMENT) {
    const chunk = lines.slice(i, i + LINES_PER_STATEMENT);
    statements.push(
      db
        .prepare(
          `INSERT OR IGNORE INTO task_logs (task_id, seq, namespace_id, attempt, level, message, timestamp, written_at)
           VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
        )
        .bind(...chunk.flatMap(({ task_id, line }) => [task_id, line.seq, namespaceId, line.attempt, line.level, line.message, iso(line.at), line.at])),
    );
  }
  return statements;
}

/** How many of a task's lines D1 keeps (not older than `cutoffMs`), and the highest seq among them. */
export async function countLogs(db: D1Database, namespaceId: string, taskId: string, cutoffMs: number): Promise<{ count: number; lastSeq: number }> {
  const row = await db
    .prepare("SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS last_seq FROM task_logs WHERE task_id = ? AND namespace_id = ? AND written_at >= ?")
    .bind(taskId, namespaceId, cutoffMs)
    .first<{ n: number; last_seq: number }>();
  return { count: row?.n ?? 0, lastSeq: row?.last_seq ?? 0 };
}

import { jsonChunks } from "./json-rows";
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

/** Lines go to D1 as one JSON parameter a statement, up to about this many characters of it. */
const LOG_CHUNK_CHARS = 256 * 1024;

/**
 * Inserts of log lines, many a statement (the lines as one JSON parameter, expanded by
 * json_each); (task_id, seq) makes a replay change nothing.
 */
export function logInserts(db: D1Database, namespaceId: string, lines: { task_id: string; line: LogPayload }[]): D1PreparedStatement[] {
  // A line is at most LIMITS.logLineBytes, so a chunk never grows far past the bound; 100 for
  // the line's other fields.
  return [...jsonChunks(lines, ({ line }) => line.message.length + 100, LOG_CHUNK_CHARS)].map((chunk) =>
    db
      .prepare(
        `INSERT OR IGNORE INTO task_logs (task_id, seq, namespace_id, attempt, level, message, timestamp, written_at)
         SELECT value ->> 0, value ->> 1, ?, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6 FROM json_each(?)`,
      )
      .bind(namespaceId, JSON.stringify(chunk.map(({ task_id, line }) => [task_id, line.seq, line.attempt, line.level, line.message, iso(line.at), line.at]))),
  );
}

/** How many of a task's lines D1 keeps (not older than `cutoffMs`), and the highest seq among them. */
export async function countLogs(db: D1Database, namespaceId: string, taskId: string, cutoffMs: number): Promise<{ count: number; lastSeq: number }> {
  const row = await db
    .prepare("SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS last_seq FROM task_logs WHERE task_id = ? AND namespace_id = ? AND written_at >= ?")
    .bind(taskId, namespaceId, cutoffMs)
    .first<{ n: number; last_seq: number }>();
  return { count: row?.n ?? 0, lastSeq: row?.last_seq ?? 0 };
}

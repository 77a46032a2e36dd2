import type { Sql } from "./sql";
import type { TimerRow } from "./task-row";

// The alarm's reads of what is due: timers, and the time the next thing falls due.

/** Timers due at `at`, oldest first, at most `limit`. */
export function dueTimers(sql: Sql, at: number, limit: number): TimerRow[] {
  return sql.all<TimerRow>("SELECT * FROM timers WHERE due_at <= ? ORDER BY due_at LIMIT ?", at, limit);
}

/** When the next timer, webhook delivery or scheduled task falls due; null when nothing waits. */
export function nextDue(sql: Sql): number | null {
  const row = sql.one<{ due: number | null }>(
    `SELECT MIN(due) AS due FROM (
       SELECT MIN(due_at) AS due FROM timers
       UNION ALL SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'
       -- Named: the planner would otherwise scan every created task through tasks_backlog.
       UNION ALL SELECT (SELECT run_at FROM tasks INDEXED BY tasks_scheduled WHERE status = 'created' AND scheduled = 1 ORDER BY run_at LIMIT 1))`,
  );
  return row?.due === null || row?.due === undefined ? null : Number(row.due);
}

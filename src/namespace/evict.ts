import { TERMINAL_STATUSES } from "../tasks/model";
import type { Sql } from "./sql";

/** `IN (...)` of the terminal statuses, for SQL. */
const TERMINAL_SQL = TERMINAL_STATUSES.map((status) => `'${status}'`).join(", ");

/**
 * Terminal tasks whose final record an outbox flush has put safely in D1 leave the Durable
 * Object, which keeps its storage to the live tasks: each only at the version flushed and only if
 * terminal, all in two statements (in the caller's transaction). Their attempts stay a while, so
 * that a late report still gets 409. Their timers went with their terminal transition (every one
 * clears them): none is left to remove.
 */
export function evictFlushed(sql: Sql, flushed: [taskId: string, version: number][]): void {
  if (flushed.length === 0) return;
  // "+status": found by the primary key; on status, the planner would walk every terminal task.
  const evicted = sql.all<{ task_id: string; status: string }>(
    `DELETE FROM tasks WHERE task_id IN (SELECT value ->> 0 FROM json_each(?1))
       AND version = (SELECT value ->> 1 FROM json_each(?1) WHERE value ->> 0 = tasks.task_id)
       AND +status IN (${TERMINAL_SQL})
     RETURNING task_id, status`,
    JSON.stringify(flushed),
  );
  if (evicted.length === 0) return;
  sql.run(
    `UPDATE attempts SET final_status = (SELECT value ->> 1 FROM json_each(?1) WHERE value ->> 0 = attempts.task_id)
      WHERE task_id IN (SELECT value ->> 0 FROM json_each(?1))`,
    JSON.stringify(evicted.map((e) => [e.task_id, e.status])),
  );
}

import type { TaskStatus } from "../tasks/model";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/** SPEC §5's bulk-cancel filter; at least one field is set (the API checks). */
export interface BulkCancelFilter {
  status?: TaskStatus[];
  task_type?: string[];
  parent_task_id?: string;
  concurrency_key?: string;
  /** ms */
  created_before?: number;
}

/**
 * Tasks cancelled in one step at most: each is a transition with its event, log line and record
 * (0.2–1 ms on a loaded machine), so a step holds the object for some 5–25 ms.
 */
export const CANCEL_STEP = 25;
/** Rows one step looks at, matching or not, so that a sparse filter cannot make a step long. */
export const SCAN_STEP = 5000;

const UNFINISHED: readonly TaskStatus[] = ["created", "queued", "processing"];

/**
 * One step of a bulk cancel: the unfinished tasks matching `filter` among the next rows by seq
 * after `after` and not past `until` (the last seq when the call began: later tasks are not
 * its business). Returns them and the seq the next step starts after (null when done).
 */
export function cancelStep(sql: Sql, filter: BulkCancelFilter, after: number, until: number): { rows: TaskRow[]; next: number | null } {
  const statuses = (filter.status ?? UNFINISHED).filter((s) => UNFINISHED.includes(s));
  if (statuses.length === 0) return { rows: [], next: null };
  // Unary + keeps the planner off the status and other indexes: a step walks the seq range only
  // (through the status index it would visit every unfinished task each step).
  const where: string[] = [`+status IN (${statuses.map(() => "?").join(", ")})`];
  const params: SqlStorageValue[] = [...statuses];
  if (filter.task_type && filter.task_type.length > 0) {
    where.push(`+task_type IN (${filter.task_type.map(() => "?").join(", ")})`);
    params.push(...filter.task_type);
  }
  if (filter.parent_task_id !== undefined) {
    where.push("+parent_task_id = ?");
    params.push(filter.parent_task_id);
  }
  if (filter.concurrency_key !== undefined) {
    where.push("+concurrency_key = ?");
    params.push(filter.concurrency_key);
  }
  if (filter.created_before !== undefined) {
    where.push("+created_at < ?");
    params.push(filter.created_before);
  }
  const window = sql.one<{ last: number | null }>(
    "SELECT MAX(seq) AS last FROM (SELECT seq FROM tasks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?)",
    after, until, SCAN_STEP,
  );
  const last = window?.last ?? null;
  if (last === null) return { rows: [], next: null };
  const rows = sql.all<TaskRow>(
    `SELECT * FROM tasks WHERE seq > ? AND seq <= ? AND ${where.join(" AND ")} ORDER BY seq LIMIT ?`,
    after, last, ...params, CANCEL_STEP,
  );
  // A full step may stop before the window's end: the next one starts after its last task.
  const next = rows.length === CANCEL_STEP ? (rows[rows.length - 1]?.seq ?? last) : last;
  return { rows, next: next >= until ? null : next };
}

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
 * One step of a bulk cancel: the unfinished tasks matching `filter` among the next SCAN_STEP
 * rows by seq after `after` and not past `until` (the last seq when the call began: later tasks
 * are not its business), at most CANCEL_STEP of them. Returns them and the seq the next step
 * starts after (null when done).
 */
export function cancelStep(sql: Sql, filter: BulkCancelFilter, after: number, until: number): { rows: TaskRow[]; next: number | null } {
  const statuses = (filter.status ?? UNFINISHED).filter((s) => UNFINISHED.includes(s));
  if (statuses.length === 0) return { rows: [], next: null };
  const where: string[] = [`status IN (${statuses.map(() => "?").join(", ")})`];
  const params: SqlStorageValue[] = [...statuses];
  if (filter.task_type && filter.task_type.length > 0) {
    where.push(`task_type IN (${filter.task_type.map(() => "?").join(", ")})`);
    params.push(...filter.task_type);
  }
  if (filter.parent_task_id !== undefined) {
    where.push("parent_task_id = ?");
    params.push(filter.parent_task_id);
  }
  if (filter.concurrency_key !== undefined) {
    where.push("concurrency_key = ?");
    params.push(filter.concurrency_key);
  }
  if (filter.created_before !== undefined) {
    where.push("created_at < ?");
    params.push(filter.created_before);
  }
  // The inner query walks the seq range only (a LIMITed subquery is not flattened, so the
  // filter cannot steer the planner onto the status index, through which a step would visit
  // every unfinished task), and runs as a co-routine: it stops at the CANCEL_STEP-th match, so
  // a dense step visits CANCEL_STEP rows, a sparse one at most SCAN_STEP. SQLite knows the
  // co-routine's rows come in seq order: the outer ORDER BY adds no sort.
  const rows = sql.all<TaskRow>(
    `SELECT * FROM (SELECT * FROM tasks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?) WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`,
    after, until, SCAN_STEP, ...params, CANCEL_STEP,
  );
  // A full step stops after its last task; a short one looked at the whole window.
  const last =
    rows.length === CANCEL_STEP
      ? (rows[rows.length - 1]?.seq ?? null)
      : (sql.one<{ last: number | null }>("SELECT MAX(seq) AS last FROM (SELECT seq FROM tasks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?)", after, until, SCAN_STEP)?.last ?? null);
  return { rows, next: last === null || last >= until ? null : last };
}

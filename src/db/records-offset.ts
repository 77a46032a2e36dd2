import type { Task, TaskStatus } from "../tasks/model";
import { parseRecord, recordConditions } from "./records";

export interface OffsetQuery {
  statuses?: TaskStatus[];
  taskTypes?: string[];
  parentTaskId?: string;
  createdAfter?: string;
  createdBefore?: string;
  sort: { field: "created_at" | "updated_at"; direction: "asc" | "desc" };
  limit: number;
  /** Rows skipped; callers bound it (Mixpeek's document: at most 10 000), so a page reads at most offset + limit + 1 index entries. */
  offset: number;
  includeTotal: boolean;
}

/**
 * One page of a namespace's retained records by position, for clients that page by offset
 * (Mixpeek's dialect). The same indexes as the keyset list serve it: one range, LIMIT/OFFSET.
 */
export async function listRecordsByOffset(
  db: D1Database,
  namespaceId: string,
  q: OffsetQuery,
  now = Date.now(),
): Promise<{ tasks: Task[]; more: boolean; total?: number }> {
  const { where, params } = recordConditions(namespaceId, q, now);
  const dir = q.sort.direction === "desc" ? "DESC" : "ASC";
  const orderBy = q.sort.field === "created_at" ? `seq ${dir}` : `updated_at ${dir}, task_id ${dir}`;
  const rows = await db
    .prepare(`SELECT record FROM task_records WHERE ${where.join(" AND ")} ORDER BY ${orderBy} LIMIT ? OFFSET ?`)
    .bind(...params, q.limit + 1, q.offset)
    .all<{ record: string }>();
  const page = rows.results.slice(0, q.limit);
  let total: number | undefined;
  if (q.includeTotal) {
    total = (await db.prepare(`SELECT COUNT(*) AS n FROM task_records WHERE ${where.join(" AND ")}`).bind(...params).first<number>("n")) ?? 0;
  }
  return { tasks: page.map((r) => parseRecord(r.record)), more: rows.results.length > q.limit, total };
}

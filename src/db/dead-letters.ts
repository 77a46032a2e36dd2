import type { Task } from "../tasks/model";
import { parseRecord, recordConditions } from "./records";

/** SPEC §5's bulk-replay filter over the retained records of finished tasks. */
export interface DeadLetterFilter {
  status: ("completed" | "failed" | "cancelled")[];
  task_type?: string[];
  error_code?: string;
  created_after?: string;
  created_before?: string;
}

/**
 * Up to `limit` finished tasks matching `filter`, oldest first, after the record with seq
 * `afterSeq`: one page of the dead-letter view. Reads D1's records, where finished tasks live.
 */
export async function deadLetterPage(db: D1Database, namespaceId: string, filter: DeadLetterFilter, afterSeq: number, limit: number, now = Date.now()): Promise<{ seq: number; task: Task }[]> {
  const { where, params } = recordConditions(
    namespaceId,
    { statuses: filter.status, taskTypes: filter.task_type, errorCode: filter.error_code, createdAfter: filter.created_after, createdBefore: filter.created_before },
    now,
  );
  where.push("seq > ?");
  params.push(afterSeq);
  const { results } = await db
    .prepare(`SELECT seq, record FROM task_records WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`)
    .bind(...params, limit)
    .all<{ seq: number; record: string }>();
  return results.map((r) => ({ seq: r.seq, task: parseRecord(r.record) }));
}

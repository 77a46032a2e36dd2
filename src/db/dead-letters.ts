import type { Task } from "../tasks/model";
import { parseRecord } from "./records";

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
  const where = ["namespace_id = ?", `status IN (${filter.status.map(() => "?").join(", ")})`, "seq > ?", "(expires_at IS NULL OR expires_at > ?)"];
  const params: (string | number)[] = [namespaceId, ...filter.status, afterSeq, now];
  if (filter.task_type && filter.task_type.length > 0) {
    where.push(`task_type IN (${filter.task_type.map(() => "?").join(", ")})`);
    params.push(...filter.task_type);
  }
  if (filter.error_code !== undefined) {
    where.push("json_extract(record, '$.error.code') = ?");
    params.push(filter.error_code);
  }
  if (filter.created_after !== undefined) {
    where.push("created_at > ?");
    params.push(filter.created_after);
  }
  if (filter.created_before !== undefined) {
    where.push("created_at < ?");
    params.push(filter.created_before);
  }
  const { results } = await db
    .prepare(`SELECT seq, record FROM task_records WHERE ${where.join(" AND ")} ORDER BY seq LIMIT ?`)
    .bind(...params, limit)
    .all<{ seq: number; record: string }>();
  return results.map((r) => ({ seq: r.seq, task: parseRecord(r.record) }));
}

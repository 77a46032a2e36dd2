import type { TaskStatus } from "./types.js";

/** The filter of `POST /v1/tasks/bulk-cancel`: at least one field. */
export interface BulkCancelFilter {
  status?: TaskStatus | TaskStatus[];
  task_type?: string | string[];
  parent_task_id?: string;
  concurrency_key?: string;
  /** ISO 8601 */
  created_before?: string;
}

/** The filter of `POST /v1/tasks/bulk-replay`: the dead-letter view. */
export interface BulkReplayFilter {
  status: "completed" | "failed" | "cancelled" | ("completed" | "failed" | "cancelled")[];
  task_type?: string | string[];
  error_code?: string;
  created_after?: string;
  created_before?: string;
}

export interface BulkReplayResult {
  task_ids: string[];
  replayed: number;
  /** The filter that continues where this call stopped; null when every match was replayed. */
  next: BulkReplayFilter | null;
}

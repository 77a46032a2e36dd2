import type { z } from "@hono/zod-openapi";
import type { CreateTaskSchema, LogLineSchema, StatsSchema, TaskSchema } from "../tasks/model.js";

/*
 * Every shape here comes from the zod schemas the API validates and documents with, through
 * `import type` only: the client bundle carries no zod and no hono at run time.
 */

/** A task as the API returns it (SPEC §5). */
export type Task = z.infer<typeof TaskSchema>;
export type TaskStatus = Task["status"];
export type TaskProgress = Task["progress"];
export type TaskErrorInfo = NonNullable<Task["error"]>;

/** The body of `POST /v1/tasks`. */
export type CreateTaskInput = z.input<typeof CreateTaskSchema>;

/** One line of a task's log. */
export type LogLine = z.infer<typeof LogLineSchema>;

/** `GET /v1/tasks/stats`. */
export type Stats = z.infer<typeof StatsSchema>;

export const TERMINAL: readonly TaskStatus[] = ["completed", "failed", "cancelled"];
export const isTerminalStatus = (status: TaskStatus): boolean => TERMINAL.includes(status);

/** A list page as every list endpoint returns it (SPEC §3). */
export interface Page<T> {
  results: T[];
  pagination: { limit: number; next_cursor: string | null; total?: number };
}

export type TaskEventType = "task.created" | "task.queued" | "task.processing" | "task.progress" | "task.completed" | "task.failed" | "task.cancelled";

/** The webhook body (SPEC §7) of a task event; streams carry the same JSON. */
export interface TaskEventBody {
  id: string;
  type: TaskEventType;
  created_at: string;
  namespace_id: string;
  data: { task: Task };
}

/** One message of an event stream: the body plus its per-namespace sequence number. */
export interface TaskEvent extends TaskEventBody {
  /** The SSE `id:`, the per-namespace sequence; pass it back as `lastEventId` to resume. */
  seq: string;
}

/** Filters of the namespace-wide stream `GET /v1/events`. */
export interface EventFilters {
  task_type?: string | string[];
  status?: TaskStatus | TaskStatus[];
}

/** Filters of `GET /v1/tasks`. */
export interface ListFilters {
  status?: string | string[];
  task_type?: string | string[];
  parent_task_id?: string;
  created_after?: string;
  created_before?: string;
  /** Page size, 1–100 (server default 20). */
  limit?: number;
  include_total?: boolean;
  /** Start from this cursor instead of the first page. */
  cursor?: string;
}

import type { RecordColumns } from "../src/db/records";
import type { Task } from "../src/tasks/model";

/** The columns the outbox sends D1 for `task` at `version`, as its flush builds them from a task's row. */
export const recordColumns = (version: number, seq: number, expiresAt: number | null, task: Task): RecordColumns => ({
  task_id: task.task_id,
  seq,
  task_type: task.task_type,
  status: task.status,
  parent_task_id: task.parent_task_id,
  created_at: task.created_at,
  updated_at: task.updated_at,
  expires_at: expiresAt,
  version,
  json: JSON.stringify(task),
});

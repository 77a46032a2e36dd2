import type { JsonObject, Progress, Task, TaskError, Waiting } from "../tasks/model";
import { iso } from "../time";
import { NO_KEY } from "./fairness";
import type { TaskRow } from "./task-row";

/**
 * The client-facing task of a row. `live` holds what only the object can count: a created
 * task's queue position and why it waits (null for any other status).
 */
export function taskOf(
  row: TaskRow,
  namespaceId: string,
  recordRetentionMs: number,
  live: { queue_position: number | null; waiting: Waiting | null },
): Task {
  return {
    task_id: row.task_id,
    namespace_id: namespaceId,
    task_type: row.task_type,
    status: row.status,
    inputs: JSON.parse(row.inputs) as JsonObject,
    outputs: row.outputs === null ? null : (JSON.parse(row.outputs) as JsonObject),
    progress: JSON.parse(row.progress) as Progress,
    error: row.error === null ? null : (JSON.parse(row.error) as TaskError),
    attempt: row.attempt,
    max_attempts: row.max_attempts,
    priority: row.priority,
    parent_task_id: row.parent_task_id,
    concurrency_key: row.concurrency_key === NO_KEY ? null : row.concurrency_key,
    run_at: iso(row.run_at),
    replay_of_task_id: row.replay_of_task_id,
    queue_position: live.queue_position,
    waiting: live.waiting,
    created_at: iso(row.created_at) ?? "",
    queued_at: iso(row.queued_at),
    started_at: iso(row.started_at),
    completed_at: iso(row.completed_at),
    updated_at: iso(row.updated_at) ?? "",
    timeout_at: row.status === "processing" ? iso(row.timeout_at) : null,
    expires_at: row.completed_at === null ? null : iso(row.completed_at + recordRetentionMs),
  };
}

/**
 * `JSON.stringify(taskOf(...))` to the byte, built without parsing the row's JSON columns and
 * stringifying them again: they hold JSON.stringify's own text, which a parse and a stringify give
 * back unchanged. Every change's event and every record is this text, so the round trip was paid
 * a change (a unit test holds it equal to the long way).
 */
export function taskJson(
  row: TaskRow,
  namespaceId: string,
  recordRetentionMs: number,
  live: { queue_position: number | null; waiting: Waiting | null },
): string {
  const text = JSON.stringify;
  return (
    `{"task_id":${text(row.task_id)},"namespace_id":${text(namespaceId)},"task_type":${text(row.task_type)},"status":${text(row.status)}` +
    `,"inputs":${row.inputs},"outputs":${row.outputs ?? "null"},"progress":${row.progress},"error":${row.error ?? "null"}` +
    `,"attempt":${text(row.attempt)},"max_attempts":${text(row.max_attempts)},"priority":${text(row.priority)}` +
    `,"parent_task_id":${text(row.parent_task_id)},"concurrency_key":${text(row.concurrency_key === NO_KEY ? null : row.concurrency_key)}` +
    `,"run_at":${text(iso(row.run_at))},"replay_of_task_id":${text(row.replay_of_task_id)}` +
    `,"queue_position":${text(live.queue_position)},"waiting":${text(live.waiting)}` +
    `,"created_at":${text(iso(row.created_at) ?? "")},"queued_at":${text(iso(row.queued_at))},"started_at":${text(iso(row.started_at))}` +
    `,"completed_at":${text(iso(row.completed_at))},"updated_at":${text(iso(row.updated_at) ?? "")}` +
    `,"timeout_at":${text(row.status === "processing" ? iso(row.timeout_at) : null)}` +
    `,"expires_at":${text(row.completed_at === null ? null : iso(row.completed_at + recordRetentionMs))}}`
  );
}

/**
 * An event's body, `JSON.stringify({ ...head, data })` to the byte, with `data` given as an object
 * or as its JSON text (a task's event wraps the task's JSON text, made once).
 */
export function eventJson(head: { id: string; type: string; created_at: string | null; namespace_id: string }, data: Record<string, unknown> | string): string {
  return typeof data === "string" ? `${JSON.stringify(head).slice(0, -1)},"data":${data}}` : JSON.stringify({ ...head, data });
}

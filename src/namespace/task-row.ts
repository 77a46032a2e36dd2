import type { Progress, TaskStatus } from "../tasks/model";

/** The shapes of the Durable Object's task and timer rows, and the helpers that go with them. */

export type TaskRow = {
  task_id: string;
  seq: number;
  task_type: string;
  status: TaskStatus;
  inputs: string;
  outputs: string | null;
  progress: string;
  error: string | null;
  attempt: number;
  max_attempts: number;
  priority: number;
  parent_task_id: string | null;
  origin: string;
  created_at: number;
  queued_at: number | null;
  started_at: number | null;
  attempt_started_at: number | null;
  completed_at: number | null;
  updated_at: number;
  timeout_at: number | null;
  lease_expires_at: number | null;
  log_count: number;
  version: number;
  progress_event_at: number | null;
  checkpoint: string | null;
  continuation: number;
  /** The fairness key; NO_KEY ("") when the task has none. */
  concurrency_key: string;
  run_at: number | null;
  /** 1 while the task waits for its run_at; the alarm releases it to the fair queue. */
  scheduled: number;
  replay_of_task_id: string | null;
};

/** The columns issue 14 added; a task created without them has no key, no run_at, no original. */
type FairColumns = "concurrency_key" | "run_at" | "replay_of_task_id";

/** What TaskStore.insert takes: the store numbers the task and starts its counters. */
export type NewTaskRow = Omit<TaskRow, "seq" | "log_count" | "version" | "progress_event_at" | "checkpoint" | "continuation" | "scheduled" | FairColumns> &
  Partial<Pick<TaskRow, FairColumns>>;

/** Columns a transition may change besides status and updated_at. */
export type TaskPatch = Partial<
  Pick<
    TaskRow,
    | "outputs"
    | "progress"
    | "error"
    | "attempt"
    | "queued_at"
    | "started_at"
    | "attempt_started_at"
    | "completed_at"
    | "timeout_at"
    | "lease_expires_at"
  >
>;

export type TimerKind = "send" | "lease" | "timeout" | "flush" | "progress";

export type TimerRow = {
  task_id: string;
  kind: TimerKind;
  due_at: number;
  tries: number;
};

/** The namespace-wide timers use this task id. */
export const NAMESPACE_TIMER = "";

export class InvalidTransition extends Error {
  constructor(
    readonly from: TaskStatus,
    readonly to: TaskStatus,
  ) {
    super(`transition ${from} → ${to} is not allowed`);
  }
}

export const EMPTY_PROGRESS: Progress = { percent: null, message: null, processed: null, total: null };

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  // A UTF-16 code unit is at most 3 bytes of UTF-8: a short text needs no encoding to know it fits.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength <= maxBytes) return text;
  const marker = " …[truncated]";
  let cut = maxBytes - new TextEncoder().encode(marker).byteLength;
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return new TextDecoder().decode(bytes.slice(0, cut)) + marker;
}

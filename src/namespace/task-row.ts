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

/**
 * A statement whose null values go in its text as the literal NULL rather than as bound
 * parameters: the object pays about a quarter of a microsecond a bound parameter (measured in
 * workerd: a created task's insert, 26 parameters, 12.4 µs; with its 13 nulls written as NULL,
 * 9.4 µs). The texts differ only by which values are null, a few shapes in practice, each built
 * once here and prepared once by the runtime's statement cache. At most 31 values.
 */
export class NullsInline {
  private readonly texts = new Map<number, string>();

  constructor(private readonly build: (slots: string[]) => string) {}

  /** The statement's text for `values`, and the values it binds: those that are not null. */
  bind(values: (SqlStorageValue | undefined)[]): [text: string, params: SqlStorageValue[]] {
    // A mask of 31 bits; an undefined value is a missing column, which binding would have refused.
    if (values.length > 31) throw new Error(`NullsInline takes at most 31 values, not ${values.length}`);
    let mask = 0;
    const params: SqlStorageValue[] = [];
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (value === undefined) throw new Error(`NullsInline: value ${i} is undefined`);
      if (value === null) mask |= 1 << i;
      else params.push(value);
    }
    let text = this.texts.get(mask);
    if (text === undefined) {
      text = this.build(values.map((_, i) => (mask & (1 << i) ? "NULL" : "?")));
      this.texts.set(mask, text);
    }
    return [text, params];
  }
}

const INSERT_COLUMNS = [
  "task_id", "seq", "task_type", "status", "inputs", "outputs", "progress", "error", "attempt", "max_attempts", "priority",
  "parent_task_id", "origin", "created_at", "queued_at", "started_at", "attempt_started_at", "completed_at", "updated_at",
  "timeout_at", "lease_expires_at", "log_count", "concurrency_key", "run_at", "scheduled", "replay_of_task_id", "version",
] as const;

/** A new task's row (version 1, or 2 when it is queued as it is stored), its values in INSERT_COLUMNS order. */
export const TASK_INSERT = new NullsInline((slots) => `INSERT INTO tasks (${INSERT_COLUMNS.join(", ")}) VALUES (${slots.join(", ")})`);

/** The values of TASK_INSERT for `row`. */
export const insertValues = (row: Omit<TaskRow, "progress_event_at" | "checkpoint" | "continuation">): SqlStorageValue[] =>
  INSERT_COLUMNS.map((column) => row[column]);

const TRANSITION_COLUMNS = [
  "status", "outputs", "progress", "error", "attempt", "queued_at", "started_at", "attempt_started_at", "completed_at",
  "updated_at", "timeout_at", "lease_expires_at", "log_count", "version",
] as const;

/** A transition's update of a row: its values in TRANSITION_COLUMNS order, then the task id. */
export const TASK_TRANSITION = new NullsInline(
  (slots) => `UPDATE tasks SET ${TRANSITION_COLUMNS.map((column, i) => `${column} = ${slots[i]}`).join(", ")} WHERE task_id = ${slots[TRANSITION_COLUMNS.length]}`,
);

/** The values of TASK_TRANSITION for the row a transition leaves. */
export const transitionValues = (row: TaskRow): SqlStorageValue[] => [...TRANSITION_COLUMNS.map((column) => row[column]), row.task_id];

import type { Task } from "./types.js";

/** The base of every error the client throws on purpose. */
export class EdgeTasksError extends Error {
  override name = "EdgeTasksError";
}

/** The API answered with an error (SPEC §3), after any retries the status allowed. */
export class ApiError extends EdgeTasksError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly details: unknown = undefined,
    /** Milliseconds the server asked to wait (429/503 `Retry-After`), when it did. */
    readonly retryAfterMs: number | undefined = undefined,
  ) {
    super(message);
  }
}

/** The request never got an answer (connection refused or lost), after every retry. */
export class NetworkError extends EdgeTasksError {
  override name = "NetworkError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `waitForTask` ran out of time; the task itself is left alone and may still finish. */
export class TaskTimeoutError extends EdgeTasksError {
  override name = "TaskTimeoutError";
  constructor(
    readonly taskId: string,
    readonly timeoutMs: number,
    /** The last state seen before the deadline. */
    readonly task: Task | null,
  ) {
    super(`task ${taskId} did not finish within ${timeoutMs} ms${task ? ` (it is ${task.status})` : ""}`);
  }
}

/** The task ended `failed`; `code` is its `error.code`. */
export class TaskFailedError extends EdgeTasksError {
  override name = "TaskFailedError";
  readonly code: string;
  constructor(readonly task: Task) {
    super(`task ${task.task_id} failed: ${task.error?.code ?? "unknown"}: ${task.error?.message ?? "no message"}`);
    this.code = task.error?.code ?? "unknown";
  }
}

/** The task ended `cancelled`. */
export class TaskCancelledError extends EdgeTasksError {
  override name = "TaskCancelledError";
  constructor(readonly task: Task) {
    super(`task ${task.task_id} was cancelled`);
  }
}

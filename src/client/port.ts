import type { FetchLike, RetryPolicy } from "./http.js";
import type { LogLine, Page, Task } from "./types.js";

// The part of the client that events.ts, wait.ts and logs.ts call. It lives here, not in
// client.ts, because client.ts builds on those modules: they depend on this shape, client.ts
// implements it, and no import goes back up.

export type QueryValue = string | number | boolean | undefined | null | readonly string[];

export interface VersionedTask {
  task: Task;
  /** The `ETag` of the answer: pass it as `ifNoneMatch` to long-poll for the next change. */
  etag: string | null;
}

export interface GetTaskOptions {
  /** Long-poll: answer when the task changes or is terminal, else after this many seconds (0–60). */
  wait?: number;
  /** With `wait`: an ETag from an earlier answer; the server answers at once if the task moved on since. */
  ifNoneMatch?: string | null;
  signal?: AbortSignal;
}

/** What the streaming helpers need of a client: its transport and the reads they fall back on. */
export interface ClientPort {
  readonly retry: RetryPolicy;
  readonly fetch: FetchLike;
  url(path: string, query?: Record<string, QueryValue>): string;
  headers(extra?: Record<string, string>): Headers;
  getTask(taskId: string, options?: GetTaskOptions): Promise<Task>;
  getTaskVersioned(taskId: string, options?: GetTaskOptions): Promise<VersionedTask>;
  logs(taskId: string, options?: { limit?: number; cursor?: string; signal?: AbortSignal }): Promise<Page<LogLine>>;
}

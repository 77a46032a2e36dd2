/**
 * The edge-tasks client (`import { createClient } from "edge-tasks/client"`): typed calls,
 * retries with Idempotency-Key, event streams, `waitForTask`, and webhook verification. Runs
 * wherever `fetch` does (Node 18+, browsers, Workers, Deno, Bun).
 */
export type { BulkCancelFilter, BulkReplayFilter, BulkReplayResult } from "./bulk.js";
export { createClient, EdgeTasksClient, type ClientOptions, type GetTaskOptions, type QueryValue, type RequestOptions, type VersionedTask } from "./client.js";
export { ApiError, EdgeTasksError, NetworkError, TaskCancelledError, TaskFailedError, TaskTimeoutError } from "./errors.js";
export type { EventsOptions } from "./events.js";
export { backoffMs, parseRetryAfter, type FetchLike, type RetryPolicy } from "./http.js";
export type { LogLinesOptions } from "./logs.js";
export { SseParser, type SseMessage } from "./sse.js";
export {
  isTerminalStatus,
  type CreateTaskInput,
  type EventFilters,
  type ListFilters,
  type LogLine,
  type Page,
  type Stats,
  type Task,
  type TaskErrorInfo,
  type TaskEvent,
  type TaskEventBody,
  type TaskEventType,
  type TaskProgress,
  type TaskStatus,
} from "./types.js";
export type { WaitOptions } from "./wait.js";
export type { WorkContext, WorkHandler, WorkOptions } from "./work.js";
export { verifyWebhook, WebhookVerificationError, type HeaderSource, type WebhookEvent } from "./webhooks.js";

import { ApiError, EdgeTasksError } from "./errors.js";
import { DEFAULT_RETRY, type FetchLike, isRecord, type RetryPolicy, seg, send } from "./http.js";
import { openEvents, type EventsOptions } from "./events.js";
import { waitForTask, type WaitOptions } from "./wait.js";
import { followLogs, type LogLinesOptions } from "./logs.js";
import type { ClientPort, GetTaskOptions, QueryValue, VersionedTask } from "./port.js";
import { work, type WorkHandler, type WorkOptions } from "./work.js";
import type { BulkCancelFilter, BulkReplayFilter, BulkReplayResult } from "./bulk.js";
import type { CreateTaskInput, EventFilters, ListFilters, LogLine, Page, Stats, Task, TaskEvent } from "./types.js";

export type { GetTaskOptions, QueryValue, VersionedTask } from "./port.js";

export interface ClientOptions {
  /** The service's origin, e.g. `https://tasks.example.com` or `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** An API key (`sk_...`), or the admin token for the admin endpoints. */
  apiKey: string;
  /** The fetch to use; defaults to the global one. */
  fetch?: FetchLike;
  /** Retries after the first attempt on network errors, 429 and 5xx. Default 3. */
  retries?: number;
  /** The first backoff between retries (doubling, with jitter). Default 250 ms. */
  retryBaseDelayMs?: number;
  /** The longest backoff between retries. Default 10 s. */
  retryMaxDelayMs?: number;
  /** Sent as `X-Namespace` on every request, when set. */
  namespace?: string;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, QueryValue>;
  headers?: Record<string, string>;
  /** For POSTs; one is generated when absent, and kept across the retries of the call. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

const asTask = (value: unknown): Task => {
  if (isRecord(value) && typeof value.task_id === "string" && typeof value.status === "string" && isRecord(value.progress)) return value as Task;
  throw new EdgeTasksError("the server answered with something that is not a task");
};

const asPage = <T>(value: unknown): Page<T> => {
  if (isRecord(value) && Array.isArray(value.results) && isRecord(value.pagination)) return value as unknown as Page<T>;
  throw new EdgeTasksError("the server answered with something that is not a list page");
};

const csv = (value: string | readonly string[] | undefined): string | undefined =>
  value === undefined ? undefined : typeof value === "string" ? value : value.join(",");

/**
 * The edge-tasks API client. Every call retries network errors, 429 and 5xx with exponential
 * backoff and jitter (honouring `Retry-After`), never other 4xx, and throws `ApiError` with the
 * server's status, type and details once it gives up.
 */
export class EdgeTasksClient implements ClientPort {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  readonly fetch: FetchLike;
  private readonly apiKey: string;
  private readonly namespace: string | undefined;

  constructor(options: ClientOptions) {
    if (!options.baseUrl) throw new EdgeTasksError("baseUrl is required");
    if (!options.apiKey) throw new EdgeTasksError("apiKey is required");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.namespace = options.namespace;
    const globalFetch: FetchLike = (input, init) => fetch(input, init);
    this.fetch = options.fetch ?? globalFetch;
    this.retry = {
      ...DEFAULT_RETRY,
      ...(options.retries === undefined ? {} : { retries: options.retries }),
      ...(options.retryBaseDelayMs === undefined ? {} : { baseDelayMs: options.retryBaseDelayMs }),
      ...(options.retryMaxDelayMs === undefined ? {} : { maxDelayMs: options.retryMaxDelayMs }),
    };
  }

  /** The absolute URL of a path with its query (empty and undefined values are left out). */
  url(path: string, query: Record<string, QueryValue> = {}): string {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      const text = typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : value.join(",");
      if (text !== "") url.searchParams.set(name, text);
    }
    return url.toString();
  }

  /** The headers every request carries (auth, namespace). */
  headers(extra: Record<string, string> = {}): Headers {
    const headers = new Headers(extra);
    headers.set("Authorization", `Bearer ${this.apiKey}`);
    if (this.namespace !== undefined) headers.set("X-Namespace", this.namespace);
    return headers;
  }

  /**
   * Any API call: JSON in, parsed JSON out (`unknown`: check it before use). Every POST carries
   * an Idempotency-Key, the same on each of its retries, so a retried create makes one resource.
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    return (await this.requestWithHeaders(method, path, options)).body;
  }

  private async requestWithHeaders(method: string, path: string, options: RequestOptions): Promise<{ status: number; headers: Headers; body: unknown }> {
    const headers = this.headers(options.headers);
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers.set("Content-Type", "application/json");
    }
    if (method.toUpperCase() === "POST" && !headers.has("Idempotency-Key")) {
      headers.set("Idempotency-Key", options.idempotencyKey ?? crypto.randomUUID());
    }
    const url = this.url(path, options.query);
    const answer = await send(this.fetch, this.retry, { method, url, headers, body, signal: options.signal });
    if (answer.status === 304 || answer.text === "") return { status: answer.status, headers: answer.headers, body: undefined };
    try {
      return { status: answer.status, headers: answer.headers, body: JSON.parse(answer.text) };
    } catch {
      throw new ApiError(answer.status, "invalid_response", `${method} ${path}: the answer is not JSON`);
    }
  }

  /** Creates a task. The Idempotency-Key (yours or a generated one) is the same on every retry. */
  async createTask(input: CreateTaskInput, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Task> {
    return asTask(await this.request("POST", "/v1/tasks", { body: input, ...options }));
  }

  /** A task; with `wait`, a long-poll that answers when it changes (see `getTaskVersioned`). */
  async getTask(taskId: string, options: GetTaskOptions = {}): Promise<Task> {
    return (await this.getTaskVersioned(taskId, options)).task;
  }

  /**
   * A task with its ETag. With `wait` and `ifNoneMatch`, the server holds the request until the
   * task's version differs from that ETag, it is terminal, or `wait` seconds pass.
   */
  async getTaskVersioned(taskId: string, options: GetTaskOptions = {}): Promise<VersionedTask> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch) headers["If-None-Match"] = options.ifNoneMatch;
    const query = options.wait === undefined ? {} : { wait: Math.max(0, Math.min(60, Math.round(options.wait))) };
    const answer = await this.requestWithHeaders("GET", `/v1/tasks/${seg(taskId)}`, { query, headers, signal: options.signal });
    if (answer.status === 304) {
      // Not modified: the caller's version is current; fetch it plainly once to return a task.
      return this.getTaskVersioned(taskId, { signal: options.signal });
    }
    return { task: asTask(answer.body), etag: answer.headers.get("ETag") };
  }

  /**
   * The namespace's tasks, newest first, as an async iterator over pages (each one request);
   * it stops after the last page. `limit` is the page size. See `tasks()` for single tasks.
   */
  async *listTasks(filters: ListFilters = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<Page<Task>> {
    let cursor = filters.cursor;
    do {
      const page = asPage<Task>(
        await this.request("GET", "/v1/tasks", {
          query: {
            status: csv(filters.status),
            task_type: csv(filters.task_type),
            parent_task_id: filters.parent_task_id,
            created_after: filters.created_after,
            created_before: filters.created_before,
            limit: filters.limit,
            include_total: filters.include_total ? "true" : undefined,
            cursor,
          },
          signal: options.signal,
        }),
      );
      yield page;
      cursor = page.pagination.next_cursor ?? undefined;
    } while (cursor);
  }

  /** Every task matching the filters, one at a time, fetching pages as it goes. */
  async *tasks(filters: ListFilters = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<Task> {
    for await (const page of this.listTasks(filters, options)) yield* page.results;
  }

  /** Cancels a task; a finished task comes back unchanged. */
  async cancelTask(taskId: string, options: { signal?: AbortSignal } = {}): Promise<Task> {
    return asTask(await this.request("POST", `/v1/tasks/${seg(taskId)}/cancel`, { signal: options.signal }));
  }

  /** Counts of unfinished tasks and the namespace's limits. */
  async stats(options: { signal?: AbortSignal } = {}): Promise<Stats> {
    const value = await this.request("GET", "/v1/tasks/stats", { signal: options.signal });
    if (!isRecord(value) || typeof value.max_concurrent_tasks !== "number") throw new EdgeTasksError("the server answered with something that is not stats");
    return value as Stats;
  }

  /** One page of a task's log, oldest first; pass `next_cursor` back as `cursor` for the next. */
  async logs(taskId: string, options: { limit?: number; cursor?: string; signal?: AbortSignal } = {}): Promise<Page<LogLine>> {
    return asPage<LogLine>(
      await this.request("GET", `/v1/tasks/${seg(taskId)}/logs`, { query: { limit: options.limit, cursor: options.cursor }, signal: options.signal }),
    );
  }

  /**
   * A task's log lines, oldest first, one at a time. With `follow`, keeps waiting for new lines
   * until the task has ended and every line is read.
   */
  logLines(taskId: string, options: LogLinesOptions = {}): AsyncGenerator<LogLine> {
    return followLogs(this, taskId, options);
  }

  /**
   * Events as an async iterator: of one task (`events("tsk_...")`, ends after its terminal
   * event) or of the namespace (`events({task_type, status})`, endless). A dropped connection
   * is reopened with `Last-Event-ID`, so no event is missed or repeated.
   */
  events(target: string | EventFilters = {}, options: EventsOptions = {}): AsyncGenerator<TaskEvent> {
    return openEvents(this, target, options);
  }

  /**
   * Waits for a task to end: follows its event stream (long-polling with backoff if the stream
   * fails), calls `onProgress` on every change, resolves with the completed task, and throws
   * `TaskFailedError` (with `code`), `TaskCancelledError` or, after `timeoutMs`,
   * `TaskTimeoutError` — the task itself is never touched by a timeout.
   */
  waitForTask(taskId: string, options: WaitOptions = {}): Promise<Task> {
    return waitForTask(this, taskId, options);
  }

  /**
   * A pull worker for `taskType` (its processor registered with `mode: "pull"`): leases up to
   * `concurrency` tasks at a time, runs `handler` on each (its return value is the outputs, a
   * throw fails the attempt), sends progress, logs and results in batches, and renews leases.
   * Resolves once `signal` aborts and every report is sent.
   */
  work(taskType: string, handler: WorkHandler, options: WorkOptions = {}): Promise<void> {
    return work(this, taskType, handler, options);
  }

  /** Cancels every unfinished task matching the filter (at least one field); how many. */
  async bulkCancel(filter: BulkCancelFilter, options: { signal?: AbortSignal } = {}): Promise<{ cancelled: number }> {
    const value = await this.request("POST", "/v1/tasks/bulk-cancel", { body: filter, signal: options.signal });
    if (!isRecord(value) || typeof value.cancelled !== "number") throw new EdgeTasksError("the server answered with something that is not a bulk-cancel result");
    return { cancelled: value.cancelled };
  }

  /** A new task replaying a finished one (same type, inputs, priority, attempts and key). */
  async replay(taskId: string, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Task> {
    return asTask(await this.request("POST", `/v1/tasks/${seg(taskId)}/replay`, options));
  }

  /**
   * Replays the finished tasks matching the filter, at most 10 000 a call; pass `next` back
   * (while it is not null) to go on.
   */
  async bulkReplay(filter: BulkReplayFilter, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<BulkReplayResult> {
    const value = await this.request("POST", "/v1/tasks/bulk-replay", { body: filter, ...options });
    if (!isRecord(value) || !Array.isArray(value.task_ids) || typeof value.replayed !== "number") {
      throw new EdgeTasksError("the server answered with something that is not a bulk-replay result");
    }
    return value as unknown as BulkReplayResult;
  }
}

/** A client for one namespace (or, with the admin token, the admin API). */
export const createClient = (options: ClientOptions): EdgeTasksClient => new EdgeTasksClient(options);

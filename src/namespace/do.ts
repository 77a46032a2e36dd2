import { DurableObject } from "cloudflare:workers";
import { createHash } from "node:crypto";
import { errorBody, fail, ok, type Result } from "../errors";
import { getHandler } from "../handlers/registry";
import { base64url, newId, newSigningSecret, randomBytes } from "../ids";
import {
  type CreateTaskInput,
  DEFAULT_SETTINGS,
  isTerminal,
  type LogLevel,
  type LogLineInput,
  type LogLine,
  type Progress,
  type JsonValue,
  type ProgressInput,
  retryDelayMs,
  type Settings,
  type Stats,
  type Task,
  type TaskError,
  type TaskStatus,
} from "../tasks/model";
import { getDeliveryRecord } from "../db/deliveries";
import { mapPage, newestFirst, type Page, type PageRequest } from "../db/keyset";
import { liveKeyIds } from "../db/keys";
import { getRecord } from "../db/records";
import { iso } from "../time";
import { taskEtag } from "../tasks/etag";
import { attemptDelivery } from "../webhooks/deliver";
import { allowPrivateUrls } from "../webhooks/urls";
import { Clock } from "./clock";
import { quotaExceeded, RequestBucket, type RequestGrant, UnfinishedTasks } from "./limits";
import type { TaskMessage } from "./messages";
import { flushOutbox, type LogPayload } from "./outbox";
import { migrate } from "./schema";
import { checkSchedule, runAtOf } from "./schedule";
import { type BulkCancelFilter, cancelStep } from "./bulk";
import { type DeadLetterFilter, deadLetterPage } from "../db/dead-letters";
import { type Delivery, type DeliveryRow, toDelivery, toWebhook, type Webhook, type WebhookPosition, WebhookStore } from "./webhooks";
import { Sql, sqlPage } from "./sql";
import { DEFAULT_MAX_OPEN_STREAMS, EventStreams, KEY_CHECK_MS, STREAM_RETRY_AFTER_SECONDS, type StreamFilter } from "./streams";
import { EMPTY_PROGRESS, InvalidTransition, NAMESPACE_TIMER, TaskStore, type TaskRow, type TimerRow } from "./store";

/** Lease of a built-in handler's attempt; the consumer renews it well before it runs out. */
export const BUILTIN_LEASE_SECONDS = 60;
const SEND_BATCH = 100;
/**
 * SPEC §5's delivery watchdog: a queued task that no consumer has claimed this long after its
 * message went out is sent again, so a message the queue lost cannot hold a slot forever.
 * `QUEUE_WATCHDOG_MS` overrides it (the crash test shortens it).
 */
export const DELIVERY_WATCHDOG_MS = 5 * 60_000;
/** Delivery attempts one alarm starts at most; the rest start in the next, at once. */
const DELIVERY_BATCH = 100;
const ALARM_BATCH = 1000;
/** SPEC §5: a bulk replay makes at most this many tasks a call, this many an atomic step. */
const BULK_REPLAY_MAX = 10_000;
const BULK_REPLAY_PAGE = 1000;
const EVENT_RETENTION_MS = 72 * 3600_000;
/** Longer than any attempt can run (the timeout is at most 24 h), so late reports still get 409. */
const ATTEMPT_RETENTION_MS = 7 * 24 * 3600_000;
const IDEMPOTENCY_RETENTION_MS = 24 * 3600_000;
/** Longer than any Worker caches a key (KEY_CACHE_TTL_MS), so a cached revoked key opens nothing. */
const REVOKED_KEY_MEMORY_MS = 60_000;

export interface ProcessorConfig {
  task_type: string;
  url: string;
  lease_seconds: number;
  created_at: string;
  updated_at: string;
}

type ProcessorRow = {
  task_type: string;
  url: string;
  lease_seconds: number;
  secret: string;
  created_at: number;
  updated_at: number;
};

/** Where a page of processors starts: (created_at in ms, task_type). */
export type ProcessorPosition = [number, string];

export type ClaimResult =
  | {
      claimed: true;
      task: Task;
      token: string;
      lease_expires_at: string;
      timeout_at: string;
      processor: { url: string; secret: string } | null;
      /** Base URL for processor callbacks when PUBLIC_URL is not configured. */
      origin: string;
      /** The state a built-in handler saved before it yielded, when this claim continues it. */
      checkpoint: JsonValue | null;
    }
  | { claimed: false; reason: string };

/** What an attempt reports: from a processor's callbacks or a built-in handler's context. */
export type Report =
  | { kind: "heartbeat" }
  | { kind: "progress"; progress: ProgressInput }
  | { kind: "logs"; lines: LogLineInput[] }
  | { kind: "complete"; outputs: Record<string, unknown> }
  | { kind: "fail"; error: { code: string; message: string }; retryable: boolean }
  /** A built-in handler yields: its state is kept and the attempt continues in a new invocation. */
  | { kind: "checkpoint"; state: JsonValue };

export interface ReportAck {
  status: TaskStatus;
  lease_expires_at: string | null;
  task: Task;
}

/** A log line with its per-task sequence number, as stored in D1. */
export type NumberedLogLine = LogLine & { seq: number };

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/**
 * The single authority over one namespace's tasks: the state machine, admission under the
 * concurrency limit, leases, timeouts, retries, and the one alarm that multiplexes every timer.
 */
export class NamespaceDO extends DurableObject<Env> {
  readonly clock = new Clock();
  private readonly sql: Sql;
  private readonly store: TaskStore;
  private readonly webhooks: WebhookStore;
  /** Deliveries whose attempt is out right now, so that no alarm starts a second one. */
  private readonly inFlight = new Set<string>();
  private namespaceId = "";
  private settings: Settings = { ...DEFAULT_SETTINGS };
  /**
   * The Durable Object's outbound I/O, in one place so that tests can make it fail: a queue
   * send or a D1 write that throws must never lose what it was carrying.
   */
  readonly io = {
    sendBatch: (messages: MessageSendRequest<TaskMessage>[]): Promise<unknown> => this.env.TASKS_QUEUE.sendBatch(messages),
    d1Batch: (statements: D1PreparedStatement[]): Promise<unknown> => this.env.DB.batch(statements),
  };
  /** The alarm time last set (on the clock's time line), null when none is pending. */
  private alarmAt: number | null = null;
  private readonly streams: EventStreams;
  /** Long-polls waiting for a task to change, by task id: the version they saw, and their wake-up. */
  private readonly waiters = new Map<string, Set<{ version: number; wake: () => void }>>();
  private wakeScheduled = false;
  private readonly watchdogMs: number;
  /** SPEC §3's request bucket of the namespace; Workers take tokens from it in small grants. */
  private readonly requests = new RequestBucket(() => this.clock.now());
  private readonly unfinished = new UnfinishedTasks(
    () => this.sql.count("SELECT COUNT(*) AS n FROM tasks WHERE status IN ('created', 'queued', 'processing')"),
    () => this.clock.now(),
  );
  /** When the open streams' keys are next checked against D1 (clock time); null while none is open. */
  private keyCheckAt: number | null = null;
  /** Keys revoked through this object lately, until when they are refused here. */
  private readonly revokedKeys = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = new Sql(ctx.storage.sql);
    const retentionMs = Number(env.TASK_RECORD_RETENTION_SECONDS || 2592000) * 1000;
    this.store = new TaskStore(this.sql, () => this.namespaceId, retentionMs, (eventId, type, at) => {
      if (type === "task.completed" || type === "task.failed" || type === "task.cancelled") this.unfinished.finished();
      this.webhooks.fanOut(eventId, type, at);
      this.streams.notify();
      this.wakeWaiters();
    }, () => this.settings.max_concurrent_per_key, () => this.clock.now());
    const keepAliveMs = Number((env as { STREAM_KEEPALIVE_MS?: string }).STREAM_KEEPALIVE_MS) || undefined;
    this.watchdogMs = watchdogMs(env);
    this.streams = new EventStreams(this.sql, ctx, keepAliveMs);
    // Clients may ping an idle socket; the runtime answers without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.webhooks = new WebhookStore(this.sql, (at) => this.store.scheduleFlush(at));
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, ctx.storage);
      const meta = new Map(this.sql.all<{ key: string; value: string }>("SELECT key, value FROM meta").map((r) => [r.key, r.value]));
      this.namespaceId = meta.get("namespace_id") ?? ctx.id.name ?? "";
      const saved = meta.get("settings");
      if (saved) this.settings = { ...DEFAULT_SETTINGS, ...(JSON.parse(saved) as Partial<Settings>) };
    });
  }

  // --- settings ------------------------------------------------------------------------------

  /** Stores the namespace's id and settings; raising the limit admits waiting tasks at once. */
  async configure(namespaceId: string, settings: Partial<Settings>): Promise<Settings> {
    const now = this.clock.now();
    this.ctx.storage.transactionSync(() => {
      this.namespaceId = namespaceId;
      const next = { ...this.settings, ...settings };
      const timeoutChanged = next.processing_timeout_seconds !== this.settings.processing_timeout_seconds;
      this.settings = next;
      this.unfinished.reset();
      this.sql.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('namespace_id', ?)", namespaceId);
      this.sql.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('settings', ?)", JSON.stringify(next));
      if (timeoutChanged) this.retimeProcessing();
      this.store.fair.reblock();
      this.admit(now);
    });
    await this.armAlarm();
    return this.settings;
  }

  getSettings(): Settings {
    return this.settings;
  }

  /**
   * Takes up to `want` tokens from the namespace's request bucket for a Worker to spend on API
   * requests; a grant of 0 means the request at hand is beyond the rate limit.
   */
  takeRequestTokens(want: number): RequestGrant {
    return this.requests.take(Math.max(1, Math.min(want, this.settings.requests_per_second)), this.settings.requests_per_second);
  }

  /** A new processing timeout applies to running attempts too, measured from their start. */
  private retimeProcessing(): void {
    const timeoutMs = this.settings.processing_timeout_seconds * 1000;
    for (const row of this.sql.all<TaskRow>("SELECT * FROM tasks WHERE status = 'processing'")) {
      const timeoutAt = (row.attempt_started_at ?? row.updated_at) + timeoutMs;
      this.store.touch(row, { timeout_at: timeoutAt }, row.updated_at);
      this.store.setTimer(row.task_id, "timeout", timeoutAt);
    }
  }

  // --- tasks ---------------------------------------------------------------------------------

  /**
   * Stores a new task and admits it at once when a slot is free. With an idempotency key, a
   * repeat of the same request returns the task the first one created, even when the Worker
   * died before it could record the response.
   */
  async createTask(input: CreateTaskInput, origin: string, idempotency?: { key: string; requestHash: string }): Promise<Result<Task>> {
    if (idempotency) {
      const seen = this.sql.one<{ request_hash: string; task_id: string }>(
        "SELECT request_hash, task_id FROM idempotency WHERE key = ? AND created_at > ?",
        idempotency.key, this.clock.now() - IDEMPOTENCY_RETENTION_MS,
      );
      if (seen && seen.request_hash !== idempotency.requestHash) {
        return fail("validation_error", "this Idempotency-Key was used with a different request", { header: "Idempotency-Key" });
      }
      if (seen) return this.findTask(seen.task_id);
    }
    const processor = this.processorRow(input.task_type);
    const handler = getHandler(input.task_type);
    if (!processor && !handler) {
      return fail("validation_error", `no handler or processor for task_type "${input.task_type}"`, {
        field: "task_type",
      });
    }
    const schedule = checkSchedule(input, this.clock.now());
    if (!schedule.ok) return schedule;
    if (!processor && handler?.inputs) {
      const parsed = handler.inputs.safeParse(input.inputs ?? {});
      if (!parsed.success) return fail("validation_error", "invalid inputs", { issues: parsed.error.issues });
    }
    if (input.parent_task_id !== undefined && !(await this.findTask(input.parent_task_id)).ok) {
      return fail("validation_error", `parent task ${input.parent_task_id} not found`, { field: "parent_task_id" });
    }
    if (!this.unfinished.fits(1, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    const row = this.ctx.storage.transactionSync(() => {
      const taskId = this.insertTask(input, origin, now);
      if (idempotency) {
        this.sql.run(
          "INSERT OR REPLACE INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, ?, ?, ?)",
          idempotency.key, idempotency.requestHash, taskId, now,
        );
      }
      this.admit(now);
      return this.store.get(taskId);
    });
    await this.armAlarm();
    return row ? ok(this.store.toTask(row)) : fail("internal_error", "task vanished after insert");
  }

  private insertTask(input: CreateTaskInput & { replay_of_task_id?: string }, origin: string, now: number): string {
    const taskId = newId("tsk");
    this.unfinished.added(1);
    this.store.insert({
      task_id: taskId,
      task_type: input.task_type,
      status: "created",
      inputs: JSON.stringify(input.inputs ?? {}),
      outputs: null,
      progress: JSON.stringify(EMPTY_PROGRESS),
      error: null,
      attempt: 1,
      max_attempts: input.max_attempts ?? 3,
      priority: input.priority ?? 5,
      parent_task_id: input.parent_task_id ?? null,
      origin,
      created_at: now,
      queued_at: null,
      started_at: null,
      attempt_started_at: null,
      completed_at: null,
      updated_at: now,
      timeout_at: null,
      lease_expires_at: null,
      concurrency_key: input.concurrency_key,
      run_at: runAtOf(input, now),
      replay_of_task_id: input.replay_of_task_id,
    });
    return taskId;
  }

  /**
   * Creates several built-in tasks in one atomic step, each under a key: a key seen before
   * returns the task it made, so a repeated call creates nothing twice. `events` are stored (and
   * fanned out to webhooks) in the same step. The data plane uses this so
   * that an object and the tasks it causes can never drift apart.
   */
  async createTasks(
    specs: { key: string; input: CreateTaskInput }[],
    origin: string,
    events: { type: string; data: Record<string, unknown> }[] = [],
  ): Promise<Result<string[]>> {
    for (const { input } of specs) {
      if (!getHandler(input.task_type) && !this.processorRow(input.task_type)) {
        return fail("validation_error", `no handler or processor for task_type "${input.task_type}"`);
      }
    }
    const fresh = specs.filter(({ key }) => this.sql.one("SELECT 1 AS seen FROM idempotency WHERE key = ?", key) === null).length;
    if (fresh > 0 && !this.unfinished.fits(fresh, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    const ids = this.ctx.storage.transactionSync(() => {
      const made = specs.map(({ key, input }) => {
        const seen = this.sql.one<{ task_id: string }>("SELECT task_id FROM idempotency WHERE key = ?", key);
        if (seen) return seen.task_id;
        const taskId = this.insertTask(input, origin, now);
        this.sql.run("INSERT INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, '', ?, ?)", key, taskId, now);
        return taskId;
      });
      for (const event of events) this.store.storeEvent(event.type, null, event.data, now);
      this.admit(now);
      return made;
    });
    await this.armAlarm();
    return ok(ids);
  }

  /** The tasks made under keys starting with `prefix` (the data plane's sweep asks this). */
  tasksByKeyPrefix(prefix: string): { key: string; task_id: string }[] {
    return this.sql.all<{ key: string; task_id: string }>(
      "SELECT key, task_id FROM idempotency WHERE key >= ? AND key < ? ORDER BY key",
      prefix, `${prefix}\uffff`,
    );
  }

  /** Cancels every unfinished task whose inputs name `field` = `value` (a deleted collection's). */
  async cancelWhereInput(field: string, value: string): Promise<number> {
    const now = this.clock.now();
    const count = this.ctx.storage.transactionSync(() => {
      const rows = this.sql.all<TaskRow>(
        `SELECT * FROM tasks WHERE status IN ('created','queued','processing') AND json_extract(inputs, '$.' || ?) = ?`,
        field, value,
      );
      for (const row of rows) {
        this.store.transition(row, "cancelled", { completed_at: now, timeout_at: null, lease_expires_at: null }, now, `its ${field} was deleted`);
        this.store.clearTaskTimers(row.task_id);
      }
      if (rows.length > 0) this.admit(now);
      return rows.length;
    });
    await this.armAlarm();
    return count;
  }

  /** A task of this namespace, live here or retained in D1. */
  async findTask(taskId: string): Promise<Result<Task>> {
    const row = this.store.get(taskId);
    if (row) return ok(this.store.toTask(row));
    const record = await getRecord(this.env.DB, this.namespaceId, taskId, this.clock.now());
    return record ? ok(record) : fail("not_found", notFoundMessage(taskId, this.env));
  }

  /** The live state of those of `taskIds` still held here (tasks that have not left for D1). */
  liveTasks(taskIds: string[]): Task[] {
    const tasks: Task[] = [];
    for (const id of taskIds) {
      const row = this.store.get(id);
      if (row) tasks.push(this.store.toTask(row));
    }
    return tasks;
  }

  /** Cancels a task that has not finished; a finished one is returned unchanged. */
  async cancelTask(taskId: string): Promise<Result<Task>> {
    const now = this.clock.now();
    const row = this.ctx.storage.transactionSync(() => {
      const current = this.store.get(taskId);
      if (!current || isTerminal(current.status)) return current;
      const freesSlot = current.status !== "created";
      const next = this.store.transition(current, "cancelled", { completed_at: now, timeout_at: null, lease_expires_at: null }, now, "cancelled by the client");
      this.store.clearTaskTimers(taskId);
      if (freesSlot) this.admit(now);
      return next;
    });
    await this.armAlarm();
    // A task no longer here has finished and left for D1: it is returned unchanged.
    return row ? ok(this.store.toTask(row)) : this.findTask(taskId);
  }

  /**
   * Long-poll: the task once it changes (a new version here), at once when it is finished or
   * already differs from `etag`, else after `waitMs` as it stands.
   */
  async waitForTask(taskId: string, waitMs: number, etag: string | null): Promise<Result<Task>> {
    const row = this.store.get(taskId);
    if (!row) return this.findTask(taskId);
    const task = this.store.toTask(row);
    if (waitMs <= 0 || isTerminal(task.status) || (etag !== null && taskEtag(task) !== etag)) return ok(task);
    const refused = this.streamQuotaExceeded();
    if (refused) return { ok: false, error: refused };
    await new Promise<void>((resolve) => {
      let waiters = this.waiters.get(taskId);
      if (!waiters) this.waiters.set(taskId, (waiters = new Set()));
      const waiter = {
        version: row.version,
        wake: () => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (waiters.size === 0 && this.waiters.get(taskId) === waiters) this.waiters.delete(taskId);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, waitMs);
      waiters.add(waiter);
    });
    return this.findTask(taskId);
  }

  /** Wakes the long-polls whose task has a new version, once the current change has committed. */
  private wakeWaiters(): void {
    if (this.wakeScheduled || this.waiters.size === 0) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      for (const [taskId, waiters] of this.waiters) {
        const version = this.store.get(taskId)?.version ?? Infinity;
        for (const waiter of [...waiters]) if (waiter.version !== version) waiter.wake();
      }
    });
  }

  // --- streams -------------------------------------------------------------------------------

  /**
   * Opens an event stream, as Server-Sent Events or as a hibernatable WebSocket. The Worker has
   * authenticated the request and checked the task; the stream's filter comes in the query of
   * its internal request. This is the one HTTP entry of the object: a socket cannot pass RPC.
   */
  override async fetch(request: Request): Promise<Response> {
    const params = new URL(request.url).searchParams;
    const list = (name: string): string[] | null => {
      const value = params.get(name);
      return value ? value.split(",") : null;
    };
    const filter: StreamFilter = { task_id: params.get("task_id"), task_types: list("task_types"), statuses: list("statuses") };
    const afterParam = params.get("after");
    const after = afterParam === null ? null : Number(afterParam);
    const keyId = params.get("key_id") ?? "";
    const now = this.clock.now();
    // Streams end within a minute of their key's revocation even when the revoking call never
    // reached this object: the alarm checks their keys against D1 while any is open.
    if (this.keyCheckAt === null) {
      // After an eviction the check's time is forgotten but its alarm may be pending: an alarm
      // that comes sooner runs the check (which is due when unknown); a later one is brought forward.
      const pending = await this.ctx.storage.getAlarm();
      if (pending === null || pending > this.clock.toWall(now + KEY_CHECK_MS)) {
        this.keyCheckAt = now + KEY_CHECK_MS;
        await this.armAlarm();
      }
    }
    // From here to the open, no await: the quota cannot be overrun by opens in between.
    if (this.revokedKeys.has(keyId)) {
      return Response.json(errorBody("unauthorized", "invalid or revoked API key"), { status: 401 });
    }
    if (after !== null && after > this.streams.lastIssued()) {
      // A cursor from another namespace, or from before a reset: resuming from it would skip silently.
      return Response.json(errorBody("validation_error", "Last-Event-ID is beyond the newest event", { field: "last_event_id" }), { status: 422 });
    }
    const refused = this.streamQuotaExceeded();
    if (refused) {
      return Response.json(errorBody(refused.type, refused.message, refused.details), {
        status: 429,
        headers: { "Retry-After": String(STREAM_RETRY_AFTER_SECONDS) },
      });
    }
    const row = filter.task_id === null ? null : this.store.get(filter.task_id);
    const live = filter.task_id === null || (row !== null && !isTerminal(row.status));
    const opening = { filter, after, live, keyId };
    if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") {
      const pair = new WebSocketPair();
      const [client, server] = [pair[0], pair[1]];
      this.streams.openSocket(server, opening);
      const protocols = request.headers.get("Sec-WebSocket-Protocol")?.split(",").map((p) => p.trim()) ?? [];
      const headers = protocols.includes("edge-tasks") ? { "Sec-WebSocket-Protocol": "edge-tasks" } : undefined;
      return new Response(null, { status: 101, webSocket: client, headers });
    }
    return new Response(this.streams.openSse(opening), {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",
      },
    });
  }

  override webSocketMessage(): void {
    // Streams only send; a client's "ping" is answered by the runtime's auto-response.
  }

  override webSocketClose(socket: WebSocket, code: number): void {
    this.streams.closeSocket(socket);
    try {
      socket.close(code === 1005 || code === 1006 ? 1000 : code, "closed");
    } catch {
      // Already closed.
    }
  }

  override webSocketError(socket: WebSocket): void {
    this.streams.closeSocket(socket);
  }

  /** How many streams are open (for the benchmark and tests). */
  streamCounts(): { sse: number; websocket: number; long_polls: number } {
    return { ...this.streams.counts(), long_polls: this.longPolls() };
  }

  /**
   * The key was revoked (in D1, before this call): its streams end now, SSE and WebSocket,
   * hibernated sockets too, and for a minute no new stream opens with it, since other Workers
   * may still accept the key from their cache for that long. Returns how many streams ended.
   */
  endStreamsOf(keyId: string): number {
    const now = this.clock.now();
    for (const [key, until] of this.revokedKeys) if (until <= now) this.revokedKeys.delete(key);
    this.revokedKeys.set(keyId, now + REVOKED_KEY_MEMORY_MS);
    return this.streams.endKey(keyId);
  }

  /** Long-polls waiting now. */
  private longPolls(): number {
    let count = 0;
    for (const waiters of this.waiters.values()) count += waiters.size;
    return count;
  }

  /** The `max_open_streams` quota: SSE, WebSocket and long-polls together; an error once it is reached. */
  private streamQuotaExceeded(): { type: "rate_limited"; message: string; details: { quota: string; limit: number }; retry_after_seconds: number } | null {
    const limit = this.settings.max_open_streams ?? DEFAULT_MAX_OPEN_STREAMS;
    const { sse, websocket, long_polls } = this.streamCounts();
    if (sse + websocket + long_polls < limit) return null;
    return {
      type: "rate_limited",
      message: `the namespace has ${limit} open streams and long-polls, its max_open_streams; retry when one has ended`,
      details: { quota: "max_open_streams", limit },
      retry_after_seconds: STREAM_RETRY_AFTER_SECONDS,
    };
  }

  /**
   * The fallback for a revocation whose call to this object failed: asks D1 once which of the
   * open streams' keys are still valid and ends the streams of the others. Due every
   * KEY_CHECK_MS while streams are open; after an eviction, at the first alarm.
   */
  private async recheckStreamKeys(now: number): Promise<void> {
    if (this.keyCheckAt !== null && this.keyCheckAt > now) return;
    const keyIds = this.streams.keyIds();
    const { sse, websocket } = this.streams.counts();
    this.keyCheckAt = sse + websocket > 0 ? now + KEY_CHECK_MS : null;
    if (keyIds.length === 0) return;
    try {
      const live = await liveKeyIds(this.env.DB, this.namespaceId, keyIds);
      for (const keyId of keyIds) if (!live.has(keyId)) this.streams.endKey(keyId);
    } catch (err) {
      console.error("the keys of open streams could not be checked; next try in the next check", err);
    }
  }

  stats(): Stats {
    return {
      created: this.store.countByStatus("created"),
      queued: this.store.countByStatus("queued"),
      processing: this.store.countByStatus("processing"),
      max_concurrent_tasks: this.settings.max_concurrent_tasks,
      processing_timeout_seconds: this.settings.processing_timeout_seconds,
    };
  }

  /** Log lines not yet flushed to D1, after `afterSeq`, oldest first. */
  pendingLogs(taskId: string, afterSeq: number): NumberedLogLine[] {
    return this.sql
      .all<{ payload: string }>("SELECT payload FROM outbox WHERE kind = 'log' AND task_id = ? ORDER BY id", taskId)
      .map((r) => JSON.parse(r.payload) as LogPayload)
      .filter((l) => l.seq > afterSeq)
      .map((l) => ({ seq: l.seq, timestamp: iso(l.at) ?? "", level: l.level, message: l.message, attempt: l.attempt }));
  }

  /**
   * Admits ready tasks while slots are free: highest priority first, round-robin across the
   * concurrency keys of a priority (store.fair), oldest first within a key; a key at
   * max_concurrent_per_key waits. Each one becomes `queued` with a send timer due now, so the
   * alarm puts it on the queue.
   */
  private admit(now: number): void {
    const free = this.settings.max_concurrent_tasks - this.store.activeCount();
    for (let admitted = 0; admitted < free; admitted++) {
      const row = this.store.nextReady();
      if (!row) return;
      this.store.transition(row, "queued", { queued_at: row.queued_at ?? now }, now);
      this.store.setTimer(row.task_id, "send", now);
    }
  }

  // --- attempts ------------------------------------------------------------------------------

  /**
   * Claims a queued task for the attempt a queue message carries. Only the first delivery of
   * that attempt's message wins; every other delivery is told why not and changes nothing.
   */
  async claim(message: Pick<TaskMessage, "task_id" | "attempt" | "slice">): Promise<ClaimResult> {
    const now = this.clock.now();
    const secret = base64url(randomBytes(32));
    const token = `${this.namespaceId}.${secret}`;
    const result = this.ctx.storage.transactionSync((): ClaimResult => {
      const row = this.store.get(message.task_id);
      if (!row) return { claimed: false, reason: "unknown task" };
      if (message.slice !== undefined) return this.claimContinuation(row, message.attempt, message.slice, token, now);
      if (row.status !== "queued" || row.attempt !== message.attempt) {
        return { claimed: false, reason: `task is ${row.status} at attempt ${row.attempt}` };
      }
      this.store.clearTimer(row.task_id, "send");
      const processor = this.processorRow(row.task_type);
      if (!processor && !getHandler(row.task_type)) {
        const error: TaskError = { code: "no_handler", message: `no handler or processor for "${row.task_type}"`, retryable: false };
        this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
        return { claimed: false, reason: error.message };
      }
      const leaseSeconds = processor?.lease_seconds ?? BUILTIN_LEASE_SECONDS;
      const leaseExpiresAt = now + leaseSeconds * 1000;
      const timeoutAt = now + this.settings.processing_timeout_seconds * 1000;
      this.sql.run(
        "INSERT INTO attempts (task_id, attempt, token_hash, lease_seconds, started_at) VALUES (?, ?, ?, ?, ?)",
        row.task_id, row.attempt, sha256(token), leaseSeconds, now,
      );
      const next = this.store.transition(
        row,
        "processing",
        { started_at: row.started_at ?? now, attempt_started_at: now, timeout_at: timeoutAt, lease_expires_at: leaseExpiresAt },
        now,
        `attempt ${row.attempt} of ${row.max_attempts}${processor ? ` dispatched to ${processor.url}` : ""}`,
      );
      this.store.setTimer(row.task_id, "lease", leaseExpiresAt);
      this.store.setTimer(row.task_id, "timeout", timeoutAt);
      return {
        claimed: true,
        task: this.store.toTask(next),
        token,
        lease_expires_at: iso(leaseExpiresAt) ?? "",
        timeout_at: iso(timeoutAt) ?? "",
        processor: processor ? { url: processor.url, secret: processor.secret } : null,
        origin: row.origin,
        // A new attempt resumes from the last checkpoint: work done before a crash is not redone.
        checkpoint: readCheckpoint(row)?.state ?? null,
      };
    });
    await this.armAlarm();
    return result;
  }

  /**
   * Claims the next slice of a checkpointed attempt. The attempt, its lease and its timeout
   * carry over; the token is new, so the slice that yielded can report nothing more.
   */
  private claimContinuation(row: TaskRow, attempt: number, slice: number, token: string, now: number): ClaimResult {
    if (this.expireIfDue(row, now)) return { claimed: false, reason: `attempt ${attempt} ran out of time before slice ${slice}` };
    if (row.status !== "processing" || row.attempt !== attempt || row.continuation !== slice) {
      return { claimed: false, reason: `no continuation ${slice} of attempt ${attempt} waits (task is ${row.status})` };
    }
    const lease = this.sql.one<{ lease_seconds: number }>("SELECT lease_seconds FROM attempts WHERE task_id = ? AND attempt = ?", row.task_id, attempt);
    const leaseSeconds = lease?.lease_seconds ?? BUILTIN_LEASE_SECONDS;
    this.sql.run("UPDATE attempts SET token_hash = ? WHERE task_id = ? AND attempt = ?", sha256(token), row.task_id, attempt);
    this.sql.run("UPDATE tasks SET continuation = 0 WHERE task_id = ?", row.task_id);
    this.store.clearTimer(row.task_id, "send");
    const renewed = this.store.renewLease(row, now + leaseSeconds * 1000);
    return {
      claimed: true,
      task: this.store.toTask(renewed),
      token,
      lease_expires_at: iso(renewed.lease_expires_at) ?? "",
      timeout_at: iso(renewed.timeout_at) ?? "",
      processor: null,
      origin: row.origin,
      checkpoint: readCheckpoint(row)?.state ?? null,
    };
  }

  /**
   * Applies a report of one attempt, authenticated by that attempt's token. An unknown token
   * is `unauthorized`; the token of an attempt that has ended is a `conflict` that changes nothing.
   */
  async report(taskId: string, token: string, report: Report): Promise<Result<ReportAck>> {
    const now = this.clock.now();
    const tokenHash = sha256(token);
    const result = this.ctx.storage.transactionSync((): Result<ReportAck> => {
      const attempt = this.sql.one<{ task_id: string; attempt: number; lease_seconds: number; final_status: string | null }>(
        "SELECT task_id, attempt, lease_seconds, final_status FROM attempts WHERE token_hash = ?",
        tokenHash,
      );
      if (!attempt || attempt.task_id !== taskId) return fail("unauthorized", "invalid callback token");
      const row = this.store.get(taskId);
      if (!row) {
        const status = attempt.final_status ?? "ended";
        return fail("conflict", `attempt ${attempt.attempt} has ended; the task is ${status}`, { status });
      }
      const current = row.attempt === attempt.attempt ? (this.expireIfDue(row, now) ?? row) : row;
      if (current.status !== "processing" || current.attempt !== attempt.attempt) {
        return fail("conflict", `attempt ${attempt.attempt} has ended; the task is ${current.status}`, {
          status: current.status,
          attempt: current.attempt,
        });
      }
      const next = this.applyReport(current, attempt.lease_seconds, report, now);
      return ok({
        status: next.status,
        lease_expires_at: next.status === "processing" ? iso(next.lease_expires_at) : null,
        task: this.store.toTask(next),
      });
    });
    await this.armAlarm();
    return result;
  }

  /**
   * Whether `token` is the callback token of an attempt of `taskId`, ended or not: the Worker
   * asks before it reads a callback's body. `report` decides what the token may still do.
   */
  isCallbackToken(taskId: string, token: string): boolean {
    return this.sql.one<{ task_id: string }>("SELECT task_id FROM attempts WHERE token_hash = ?", sha256(token))?.task_id === taskId;
  }

  private applyReport(row: TaskRow, leaseSeconds: number, report: Report, now: number): TaskRow {
    switch (report.kind) {
      case "heartbeat":
        return this.renewLease(row, leaseSeconds, now);
      case "progress": {
        const progress: Progress = { ...(JSON.parse(row.progress) as Progress) };
        for (const key of ["percent", "message", "processed", "total"] as const) {
          const value = report.progress[key];
          if (value !== undefined) Object.assign(progress, { [key]: value });
        }
        const renewed = this.renewLease(row, leaseSeconds, now);
        const next = this.store.touch(renewed, { progress: JSON.stringify(progress) }, now);
        this.store.progressed(next, now);
        return next;
      }
      case "logs": {
        const logged = this.store.log(row, report.lines.map((l) => ({ level: l.level ?? "info", message: l.message })), now);
        return this.renewLease(logged, leaseSeconds, now);
      }
      case "complete":
        return this.finish(row, "completed", { outputs: JSON.stringify(report.outputs), error: null }, now);
      case "fail":
        return this.failAttempt(row, { ...report.error, retryable: report.retryable }, now);
      case "checkpoint": {
        const slice = (readCheckpoint(row)?.slice ?? 0) + 1;
        const checkpoint = JSON.stringify({ slice, state: report.state } satisfies SavedCheckpoint);
        this.sql.run("UPDATE tasks SET checkpoint = ?, continuation = ? WHERE task_id = ?", checkpoint, slice, row.task_id);
        this.store.setTimer(row.task_id, "send", now);
        return this.renewLease({ ...row, checkpoint, continuation: slice }, leaseSeconds, now);
      }
    }
  }

  private renewLease(row: TaskRow, leaseSeconds: number, now: number): TaskRow {
    return this.store.renewLease(row, now + leaseSeconds * 1000);
  }

  /** Ends the current attempt: retried while it may be, else the task fails. */
  private failAttempt(row: TaskRow, error: TaskError, now: number): TaskRow {
    const errorJson = JSON.stringify(error);
    if (error.retryable && row.attempt < row.max_attempts) {
      const delay = retryDelayMs(row.attempt);
      this.store.clearTaskTimers(row.task_id);
      const next = this.store.transition(
        row,
        "queued",
        // The next attempt starts from nothing (SPEC §5): this attempt's progress is not its own.
        { attempt: row.attempt + 1, error: errorJson, progress: JSON.stringify(EMPTY_PROGRESS), timeout_at: null, lease_expires_at: null, attempt_started_at: null },
        now,
        `attempt ${row.attempt} failed (${error.code}: ${error.message}); attempt ${row.attempt + 1} in ${(delay / 1000).toFixed(1)} s`,
      );
      this.store.setTimer(row.task_id, "send", now + delay);
      if (row.continuation !== 0) this.sql.run("UPDATE tasks SET continuation = 0 WHERE task_id = ?", row.task_id);
      return { ...next, continuation: 0 };
    }
    return this.finish(row, "failed", { error: errorJson }, now, `${error.code}: ${error.message}`);
  }

  /** A terminal transition: clears the task's timers and gives its slot to the backlog. */
  private finish(row: TaskRow, to: "completed" | "failed" | "cancelled", patch: Partial<TaskRow>, now: number, note?: string): TaskRow {
    // Completed means 100 %, whatever the handler last reported; the rest of progress stays (SPEC §5).
    const progress = to === "completed" ? JSON.stringify({ ...(JSON.parse(row.progress) as Progress), percent: 100 }) : row.progress;
    const next = this.store.transition(
      row,
      to,
      { ...patch, progress, completed_at: now, timeout_at: null, lease_expires_at: null },
      now,
      note,
    );
    this.store.clearTaskTimers(row.task_id);
    this.admit(now);
    return next;
  }

  /** The dead-letter queue gave up on this attempt's message: the task can never be claimed. */
  async deadLetter(message: Pick<TaskMessage, "task_id" | "attempt">): Promise<void> {
    const now = this.clock.now();
    this.ctx.storage.transactionSync(() => {
      const row = this.store.get(message.task_id);
      if (!row || row.status !== "queued" || row.attempt !== message.attempt) return;
      const error: TaskError = { code: "dispatch_failed", message: "the queue gave up delivering this task", retryable: false };
      this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
    });
    await this.armAlarm();
  }

  /**
   * Moves a task to `to` through the state machine alone, bypassing the guards of the public
   * operations. For tests of the transition table; throws InvalidTransition when refused.
   */
  forceTransition(taskId: string, to: TaskStatus): Result<Task> {
    const row = this.store.get(taskId);
    if (!row) return fail("not_found", notFoundMessage(taskId, this.env));
    try {
      return ok(this.store.toTask(this.store.transition(row, to, {}, this.clock.now())));
    } catch (err) {
      if (err instanceof InvalidTransition) return fail("conflict", err.message, { status: row.status });
      throw err;
    }
  }

  // --- processors ----------------------------------------------------------------------------

  /** Processors are read on every create and claim; the cache is dropped on every change. */
  private processorCache = new Map<string, ProcessorRow | null>();

  private processorRow(taskType: string): ProcessorRow | null {
    let row = this.processorCache.get(taskType);
    if (row === undefined) {
      row = this.sql.one<ProcessorRow>("SELECT * FROM processors WHERE task_type = ?", taskType);
      this.processorCache.set(taskType, row);
    }
    return row;
  }

  private toProcessor(row: ProcessorRow): ProcessorConfig {
    return {
      task_type: row.task_type,
      url: row.url,
      lease_seconds: row.lease_seconds,
      created_at: iso(row.created_at) ?? "",
      updated_at: iso(row.updated_at) ?? "",
    };
  }

  /** Creates or replaces a processor; its secret is made once and returned only then. */
  putProcessor(taskType: string, url: string, leaseSeconds: number): Result<{ processor: ProcessorConfig; secret: string | null }> {
    const now = this.clock.now();
    this.processorCache.clear();
    return this.ctx.storage.transactionSync(() => {
      const existing = this.processorRow(taskType);
      const quota = this.settings.max_processors;
      if (!existing && this.sql.count("SELECT COUNT(*) AS n FROM processors") >= quota) return quotaExceeded("max_processors", quota, "processors");
      const secret = existing ? null : newSigningSecret();
      if (existing) {
        this.sql.run("UPDATE processors SET url = ?, lease_seconds = ?, updated_at = ? WHERE task_type = ?", url, leaseSeconds, now, taskType);
      } else {
        this.sql.run(
          "INSERT INTO processors (task_type, url, lease_seconds, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
          taskType, url, leaseSeconds, secret, now, now,
        );
      }
      this.processorCache.clear();
      const row = this.processorRow(taskType);
      if (!row) throw new Error("processor vanished after write");
      return ok({ processor: this.toProcessor(row), secret });
    });
  }

  getProcessor(taskType: string): Result<ProcessorConfig> {
    const row = this.processorRow(taskType);
    return row ? ok(this.toProcessor(row)) : fail("not_found", `no processor for task_type "${taskType}"`);
  }

  /** A page of processors, newest first, by keyset in this storage. */
  listProcessors(req: PageRequest<ProcessorPosition>): Page<ProcessorConfig, ProcessorPosition> {
    const list = newestFirst({ select: "*", from: "processors" }, {}, ["created_at", "task_type"], (row: ProcessorRow): ProcessorPosition => [row.created_at, row.task_type]);
    return mapPage(sqlPage(this.sql, list, req), (row) => this.toProcessor(row));
  }

  deleteProcessor(taskType: string): boolean {
    this.processorCache.clear();
    return this.sql.run("DELETE FROM processors WHERE task_type = ?", taskType) > 0;
  }

  // --- webhooks ------------------------------------------------------------------------------

  /** Registers an endpoint; its secret is returned only here and on rotation. */
  async createWebhook(input: { url: string; event_types: string[]; description: string | null }): Promise<Result<{ webhook: Webhook; secret: string }>> {
    const quota = this.settings.max_webhooks;
    if (this.sql.count("SELECT COUNT(*) AS n FROM webhooks") >= quota) return quotaExceeded("max_webhooks", quota, "webhooks");
    return ok(this.webhooks.create(input, this.clock.now()));
  }

  /** A page of webhook endpoints, newest first, by keyset in this storage. */
  listWebhooks(req: PageRequest<WebhookPosition>): Page<Webhook, WebhookPosition> {
    return this.webhooks.list(req);
  }

  getWebhook(webhookId: string): Result<Webhook> {
    const row = this.webhooks.get(webhookId);
    return row ? ok(toWebhook(row)) : fail("not_found", `webhook ${webhookId} not found`);
  }

  async updateWebhook(webhookId: string, patch: { url?: string; event_types?: string[]; description?: string | null; is_active?: boolean }): Promise<Result<Webhook>> {
    const now = this.clock.now();
    const updated = this.ctx.storage.transactionSync(() => this.webhooks.update(webhookId, patch, now));
    await this.armAlarm();
    return updated ? ok(updated) : fail("not_found", `webhook ${webhookId} not found`);
  }

  async deleteWebhook(webhookId: string): Promise<boolean> {
    const now = this.clock.now();
    const removed = this.ctx.storage.transactionSync(() => this.webhooks.remove(webhookId, now));
    await this.armAlarm();
    return removed;
  }

  async rotateWebhookSecret(webhookId: string): Promise<Result<{ webhook: Webhook; secret: string }>> {
    const rotated = this.ctx.storage.transactionSync(() => this.webhooks.rotate(webhookId, this.clock.now()));
    return rotated ? ok(rotated) : fail("not_found", `webhook ${webhookId} not found`);
  }

  /** Sends a `webhook.test` event to this endpoint alone, through the usual delivery path. */
  async testWebhook(webhookId: string): Promise<Result<Delivery>> {
    const now = this.clock.now();
    const result = this.ctx.storage.transactionSync((): Result<Delivery> => {
      const hook = this.webhooks.get(webhookId);
      if (!hook) return fail("not_found", `webhook ${webhookId} not found`);
      if (hook.is_active === 0) return fail("conflict", "the webhook is disabled; activate it first", { is_active: false });
      const eventId = this.store.storeEventOnly("webhook.test", null, { webhook: { webhook_id: hook.webhook_id, url: hook.url } }, now);
      return ok(toDelivery(this.webhooks.enqueue(webhookId, eventId, "webhook.test", now)));
    });
    await this.armAlarm();
    return result;
  }

  /** Delivers an event again to the endpoint, as a new delivery with the same webhook-id. */
  async redeliver(webhookId: string, deliveryId: string): Promise<Result<Delivery>> {
    const now = this.clock.now();
    const original = this.webhooks.getDelivery(deliveryId) ?? (await getDeliveryRecord(this.env.DB, this.namespaceId, deliveryId));
    const result = this.ctx.storage.transactionSync((): Result<Delivery> => {
      const hook = this.webhooks.get(webhookId);
      if (!hook || !original || original.webhook_id !== webhookId) return fail("not_found", `delivery ${deliveryId} not found`);
      if (hook.is_active === 0) return fail("conflict", "the webhook is disabled; activate it first", { is_active: false });
      if (this.store.eventBody(original.event_id) === null) {
        return fail("conflict", "the event is no longer kept (events can be redelivered for 72 hours)", { event_id: original.event_id });
      }
      return ok(toDelivery(this.webhooks.enqueue(webhookId, original.event_id, original.event_type, now)));
    });
    await this.armAlarm();
    return result;
  }

  /** How many delivery attempts are out right now (for tests and the benchmark to wait on). */
  deliveriesInFlight(): number {
    return this.inFlight.size;
  }

  // --- the alarm -----------------------------------------------------------------------------

  /** Sets the alarm to the earliest due timer unless an earlier alarm is already pending. */
  private async armAlarm(): Promise<void> {
    const due = this.store.nextDue();
    const next = due === null ? this.keyCheckAt : this.keyCheckAt === null ? due : Math.min(due, this.keyCheckAt);
    if (next === null || (this.alarmAt !== null && this.alarmAt <= next)) return;
    this.alarmAt = next;
    await this.ctx.storage.setAlarm(this.clock.toWall(next));
  }

  /** Runs every due timer, each on its own so that one failure never blocks the rest. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = this.clock.now();
    this.ctx.storage.transactionSync(() => {
      if (this.store.releaseScheduled(now, ALARM_BATCH) > 0) this.admit(now);
    });
    const due = this.store.dueTimers(now, ALARM_BATCH);
    const sends: TimerRow[] = [];
    let flush = false;
    for (const timer of due) {
      try {
        if (timer.kind === "send") sends.push(timer);
        else if (timer.kind === "flush") flush = true;
        else if (timer.kind === "progress") this.ctx.storage.transactionSync(() => this.progressDue(timer, now));
        else this.ctx.storage.transactionSync(() => this.expire(timer, now));
      } catch (err) {
        console.error(`timer ${timer.kind} of ${timer.task_id} failed`, err);
        this.store.setTimer(timer.task_id, timer.kind, now + backoffMs(timer.tries), timer.tries + 1);
      }
    }
    this.startDeliveries(now);
    if (sends.length > 0) await this.sendMessages(sends);
    if (flush) await this.flushTimer();
    this.prune(now);
    await this.recheckStreamKeys(now);
    if (due.length === ALARM_BATCH) this.store.setTimerIfLater(NAMESPACE_TIMER, "flush", now);
    await this.armAlarm();
  }

  private progressDue(timer: TimerRow, now: number): void {
    this.store.clearTimer(timer.task_id, "progress");
    const row = this.store.get(timer.task_id);
    if (row) this.store.emitProgress(row, now);
  }

  /**
   * Starts every due webhook delivery. Each attempt is counted and persisted before it goes out,
   * then runs on its own: the alarm does not wait for it, so a slow or dead endpoint delays
   * neither the other deliveries nor the queue sends and flushes of later alarms.
   */
  private startDeliveries(now: number): void {
    const due = this.webhooks.due(now, DELIVERY_BATCH).filter((d) => !this.inFlight.has(d.delivery_id));
    for (const delivery of due) {
      try {
        const start = this.ctx.storage.transactionSync(() => {
          const hook = this.webhooks.get(delivery.webhook_id);
          const body = this.store.eventBody(delivery.event_id);
          if (!hook || hook.is_active === 0 || body === null) {
            this.webhooks.abandon(delivery, !hook || hook.is_active === 0 ? "endpoint disabled or deleted" : "event expired", now);
            return null;
          }
          return { row: this.webhooks.begin(delivery, now), url: hook.url, secrets: this.webhooks.secrets(hook, now), body };
        });
        if (!start) continue;
        this.inFlight.add(delivery.delivery_id);
        this.ctx.waitUntil(this.deliver(start.row, start.url, start.secrets, start.body));
      } catch (err) {
        console.error(`delivery ${delivery.delivery_id} could not start`, err);
      }
    }
  }

  private async deliver(row: DeliveryRow, url: string, secrets: string[], body: string): Promise<void> {
    try {
      const outcome = await attemptDelivery(url, secrets, row.event_id, body, allowPrivateUrls(this.env), this.clock.now());
      this.ctx.storage.transactionSync(() => {
        // The delivery may have been settled meanwhile (its endpoint disabled or deleted).
        const current = this.webhooks.getDelivery(row.delivery_id);
        if (current && current.status === "pending" && current.attempts === row.attempts) {
          this.webhooks.settle(current, outcome, this.clock.now());
        }
      });
    } catch (err) {
      console.error(`delivery ${row.delivery_id} outcome could not be recorded; it is retried after its timeout`, err);
    } finally {
      this.inFlight.delete(row.delivery_id);
      await this.armAlarm();
    }
  }

  /** A lease or processing-timeout timer came due. */
  private expire(timer: TimerRow, now: number): void {
    this.store.clearTimer(timer.task_id, timer.kind);
    const row = this.store.get(timer.task_id);
    if (row) this.expireIfDue(row, now);
  }

  /**
   * Ends a processing attempt whose timeout or lease has passed, as its timer would. Reports
   * and claims call it too: an attempt past its time has ended even if the alarm is late.
   * Returns the task after the change, or null when nothing had expired.
   */
  private expireIfDue(row: TaskRow, now: number): TaskRow | null {
    if (row.status !== "processing") return null;
    if (row.timeout_at !== null && row.timeout_at <= now) {
      const seconds = this.settings.processing_timeout_seconds;
      const error: TaskError = { code: "timeout", message: `processing took longer than ${seconds} s`, retryable: false };
      return this.finish(row, "failed", { error: JSON.stringify(error) }, now, error.message);
    }
    if (row.lease_expires_at !== null && row.lease_expires_at <= now) {
      return this.failAttempt(row, { code: "lease_expired", message: `attempt ${row.attempt} stopped renewing its lease`, retryable: true }, now);
    }
    return null;
  }

  /**
   * Puts admitted tasks on the queue. A timer moves only after its send succeeded, so a failed
   * send is retried by a later alarm and no task is ever left queued without a message.
   *
   * After a successful send, a queued task's send timer stays as its delivery watchdog, due
   * `watchdogMs` later: if it fires, no consumer has claimed that attempt, so the message is sent
   * again (the duplicate, if the first one was only slow, is refused by the claim). It always
   * belongs to the current attempt: a claim and every other way out of `queued` remove it, and a
   * retry replaces it. A continuation's timer is dropped instead: a processing attempt whose
   * message is lost ends by its lease.
   */
  private async sendMessages(timers: TimerRow[]): Promise<void> {
    const pending: { timer: TimerRow; body: TaskMessage }[] = [];
    for (const timer of timers) {
      const row = this.store.get(timer.task_id);
      if (row?.status === "queued") {
        pending.push({ timer, body: { namespace_id: this.namespaceId, task_id: row.task_id, attempt: row.attempt } });
      } else if (row?.status === "processing" && row.continuation > 0) {
        pending.push({ timer, body: { namespace_id: this.namespaceId, task_id: row.task_id, attempt: row.attempt, slice: row.continuation } });
      } else this.store.clearTimer(timer.task_id, "send");
    }
    for (let i = 0; i < pending.length; i += SEND_BATCH) {
      const chunk = pending.slice(i, i + SEND_BATCH);
      try {
        await this.io.sendBatch(chunk.map((p) => ({ body: p.body, contentType: "json" as const })));
        const watchdogAt = this.clock.now() + this.watchdogMs;
        // Guarded by due_at: a claim or retry that came while the send was out has its say.
        this.ctx.storage.transactionSync(() => {
          for (const { timer, body } of chunk) {
            if (body.slice === undefined) {
              this.sql.run(
                "UPDATE timers SET due_at = ?, tries = 0 WHERE task_id = ? AND kind = 'send' AND due_at = ?",
                watchdogAt, timer.task_id, timer.due_at,
              );
            } else {
              this.sql.run("DELETE FROM timers WHERE task_id = ? AND kind = 'send' AND due_at = ?", timer.task_id, timer.due_at);
            }
          }
        });
      } catch (err) {
        console.error(`queue send of ${chunk.length} tasks failed; retrying`, err);
        const retryAt = this.clock.now() + backoffMs(chunk[0]?.timer.tries ?? 0);
        this.ctx.storage.transactionSync(() => {
          for (const { timer } of chunk) this.store.setTimer(timer.task_id, "send", retryAt, timer.tries + 1);
        });
      }
    }
  }

  /**
   * Flushes the outbox to D1 now. The list endpoint calls it before a walk begins, so that every
   * task created before the walk is in D1 when its first page is read.
   */
  async flushNow(): Promise<void> {
    // A round writes at most a batch of each kind (100 records), so go on until the outbox is
    // empty. A round moves a batch or throws; the rows there at the start bound the rounds, so
    // rows that keep arriving meanwhile cannot hold the caller forever.
    const pending = this.sql.count(
      "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM record_outbox) + (SELECT COUNT(*) FROM delivery_outbox) AS n",
    );
    try {
      for (let round = 0; round <= pending; round++) {
        if (!(await this.flush())) break;
      }
    } catch (err) {
      console.error("outbox flush on demand failed", err);
    }
  }

  private flush(): Promise<boolean> {
    return flushOutbox({
      sql: this.sql,
      db: this.env.DB,
      namespaceId: this.namespaceId,
      d1Batch: (statements) => this.io.d1Batch(statements),
      transaction: (fn) => this.ctx.storage.transactionSync(fn),
      onTerminalFlushed: (taskId, version, status) => this.evict(taskId, version, status),
    });
  }

  /** The flush timer: writes a round of the outbox, again at once if rows remain, later on failure. */
  private async flushTimer(): Promise<void> {
    const timer = this.sql.one<{ tries: number }>("SELECT tries FROM timers WHERE task_id = ? AND kind = 'flush'", NAMESPACE_TIMER);
    this.store.clearTimer(NAMESPACE_TIMER, "flush");
    try {
      if (await this.flush()) this.store.setTimerIfLater(NAMESPACE_TIMER, "flush", this.clock.now());
    } catch (err) {
      const tries = (timer?.tries ?? 0) + 1;
      console.error(`outbox flush failed (try ${tries}); retrying`, err);
      this.store.setTimer(NAMESPACE_TIMER, "flush", this.clock.now() + backoffMs(tries), tries);
    }
  }

  /**
   * A terminal task whose final record is safe in D1 leaves the Durable Object, which keeps its
   * storage to the live tasks. Its attempts stay a while, so that a late report still gets 409.
   */
  private evict(taskId: string, version: number, status: string): void {
    const row = this.store.get(taskId);
    if (!row || row.version !== version || !isTerminal(row.status)) return;
    this.sql.run("DELETE FROM tasks WHERE task_id = ?", taskId);
    this.sql.run("UPDATE attempts SET final_status = ? WHERE task_id = ?", status, taskId);
    this.store.clearTaskTimers(taskId);
  }

  /** Drops what is kept only for a while: old events, settled attempts, idempotency keys. */
  private prune(now: number): void {
    this.webhooks.prune(now);
    this.sql.run(
      "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE created_at < ? ORDER BY seq LIMIT 500)",
      now - EVENT_RETENTION_MS,
    );
    this.sql.run(
      `DELETE FROM attempts WHERE rowid IN
         (SELECT rowid FROM attempts WHERE started_at < ? AND final_status IS NOT NULL LIMIT 500)`,
      now - ATTEMPT_RETENTION_MS,
    );
    this.sql.run(
      "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE created_at < ? LIMIT 500)",
      now - IDEMPOTENCY_RETENTION_MS,
    );
  }

  // --- fairness, scheduled starts, bulk cancel and replay ---

  /**
   * Cancels every unfinished task matching `filter` that exists when the call begins, each an
   * ordinary cancel (event, webhooks, slot freed and given to the backlog), in steps of at most
   * CANCEL_STEP tasks with a yield between them, so other requests run while a big one goes on.
   */
  async bulkCancel(filter: BulkCancelFilter): Promise<{ cancelled: number; steps: number }> {
    const until = this.sql.count("SELECT COALESCE(MAX(seq), 0) AS n FROM tasks");
    let after: number | null = 0;
    let cancelled = 0;
    let steps = 0;
    while (after !== null) {
      const from: number = after;
      const now = this.clock.now();
      after = this.ctx.storage.transactionSync(() => {
        const step = cancelStep(this.sql, filter, from, until);
        let freed = false;
        for (const row of step.rows) {
          freed ||= row.status !== "created";
          this.store.transition(row, "cancelled", { completed_at: now, timeout_at: null, lease_expires_at: null }, now, "cancelled by a bulk cancel");
          this.store.clearTaskTimers(row.task_id);
        }
        if (freed) this.admit(now);
        cancelled += step.rows.length;
        return step.next;
      });
      steps++;
      await this.armAlarm();
      // Let other requests in between steps.
      if (after !== null) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return { cancelled, steps };
  }

  /**
   * Creates a replay of each finished task: same task_type, inputs, priority, max_attempts and
   * concurrency_key, with replay_of_task_id set, in one atomic step. The originals never change.
   * A data-plane type is replayed as the data plane made it (its inputs were checked then).
   */
  async replayTasks(sources: Task[], origin: string): Promise<Result<Task[]>> {
    for (const source of sources) {
      if (!isTerminal(source.status)) {
        return fail("conflict", `task ${source.task_id} is ${source.status}; only a finished task can be replayed`, { task_id: source.task_id, status: source.status });
      }
      if (!getHandler(source.task_type) && !this.processorRow(source.task_type)) {
        return fail("validation_error", `no handler or processor for task_type "${source.task_type}"`, { task_id: source.task_id });
      }
    }
    if (!this.unfinished.fits(sources.length, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    const rows = this.ctx.storage.transactionSync(() => {
      const ids = sources.map((source) =>
        this.insertTask(
          {
            task_type: source.task_type,
            inputs: source.inputs,
            priority: source.priority,
            max_attempts: source.max_attempts,
            ...(source.concurrency_key ? { concurrency_key: source.concurrency_key } : {}),
            replay_of_task_id: source.task_id,
          },
          origin,
          now,
        ),
      );
      this.admit(now);
      return ids.map((id) => this.store.get(id));
    });
    await this.armAlarm();
    return ok(rows.filter((row): row is TaskRow => row !== null).map((row) => this.store.toTask(row, sources.length === 1)));
  }

  /**
   * SPEC §5's bulk replay, the dead-letter view and its replay in one: replays the finished
   * tasks matching `filter` (read from D1's records, oldest first), at most BULK_REPLAY_MAX a
   * call, each page of them in one atomic step. When more match, `next` is the filter that
   * continues after the last one replayed: it ends no later than this call's start, so the
   * replays made here are never replayed by it.
   */
  async bulkReplay(filter: DeadLetterFilter, origin: string): Promise<Result<{ task_ids: string[]; replayed: number; next: DeadLetterFilter | null }>> {
    const startedAt = iso(this.clock.now()) ?? "";
    await this.flushNow();
    const picked: Task[] = [];
    let afterSeq = 0;
    while (picked.length <= BULK_REPLAY_MAX) {
      const page = await deadLetterPage(this.env.DB, this.namespaceId, filter, afterSeq, BULK_REPLAY_PAGE, this.clock.now());
      picked.push(...page.map((p) => p.task));
      const last = page[page.length - 1];
      if (!last || page.length < BULK_REPLAY_PAGE) break;
      afterSeq = last.seq;
    }
    let next: DeadLetterFilter | null = null;
    if (picked.length > BULK_REPLAY_MAX) {
      // Stop before a run of equal created_at that the limit would cut, so that `created_after`
      // continues exactly; a run longer than the whole call is cut (its rest is skipped).
      const boundary = picked[BULK_REPLAY_MAX]?.created_at;
      picked.length = BULK_REPLAY_MAX;
      while (picked.length > 1 && picked[picked.length - 1]?.created_at === boundary) picked.pop();
      const before = filter.created_before !== undefined && filter.created_before < startedAt ? filter.created_before : startedAt;
      next = { ...filter, created_after: picked[picked.length - 1]?.created_at ?? startedAt, created_before: before };
    }
    const ids: string[] = [];
    for (let i = 0; i < picked.length; i += BULK_REPLAY_PAGE) {
      const made = await this.replayTasks(picked.slice(i, i + BULK_REPLAY_PAGE), origin);
      if (!made.ok) return ids.length === 0 ? made : ok({ task_ids: ids, replayed: ids.length, next: { ...filter, created_after: picked[i - 1]?.created_at ?? startedAt } });
      ids.push(...made.value.map((t) => t.task_id));
    }
    return ok({ task_ids: ids, replayed: ids.length, next });
  }

  /**
   * For tests and the benchmark: `count` ready tasks of `task_type` straight into SQLite, spread
   * over `keys` concurrency keys (none when 0), without events or records, as a backlog that
   * took hours to build would stand. Then admits.
   */
  async seedBacklog(spec: { count: number; task_type: string; keys: number; key_prefix: string; priority: number }): Promise<number> {
    const now = this.clock.now();
    this.ctx.storage.transactionSync(() => {
      const base = this.sql.count("SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) AS n FROM meta WHERE key = 'task_seq'");
      const top = Math.max(base, this.sql.count("SELECT COALESCE(MAX(seq), 0) AS n FROM tasks"));
      // Bound numbers arrive as REAL: cast, or ids and keys would read "12.0".
      const key = spec.keys > 0 ? "? || CAST((x - 1) % CAST(? AS INTEGER) AS INTEGER)" : "''";
      this.sql.run(
        `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
         INSERT INTO tasks (task_id, seq, task_type, status, inputs, progress, attempt, max_attempts, priority, origin,
           created_at, updated_at, log_count, version, concurrency_key)
         SELECT 'tsk_seed' || CAST(? + x AS INTEGER), CAST(? + x AS INTEGER), ?, 'created', '{}', ?, 1, 1, ?, 'http://seed', ?, ?, 0, 1, ${key}
         FROM c`,
        spec.count, top, top, spec.task_type, JSON.stringify(EMPTY_PROGRESS), spec.priority, now, now,
        ...(spec.keys > 0 ? [spec.key_prefix, spec.keys] : []),
      );
      this.sql.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('task_seq', ?)", top + spec.count);
      const turn = this.sql.count("SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) AS n FROM meta WHERE key = 'fair_turn'");
      this.sql.run(
        `INSERT INTO fair_queue (key, priority, waiting, turn, blocked)
           SELECT concurrency_key, priority, COUNT(*), ? + MIN(seq), 0 FROM tasks WHERE seq > ? AND status = 'created' GROUP BY concurrency_key, priority
         ON CONFLICT (key, priority) DO UPDATE SET waiting = waiting + excluded.waiting`,
        turn, top,
      );
      this.sql.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('fair_turn', ?)", turn + top + spec.count + 1);
      this.store.fair.reblock();
      this.unfinished.reset();
      this.admit(now);
    });
    await this.armAlarm();
    return spec.count;
  }
}

interface SavedCheckpoint {
  slice: number;
  state: JsonValue;
}

const readCheckpoint = (row: TaskRow): SavedCheckpoint | null =>
  row.checkpoint === null ? null : (JSON.parse(row.checkpoint) as SavedCheckpoint);

/** The 404 of an unknown task says that records expire: a purged task looks just like it. */
export function notFoundMessage(taskId: string, env: Env): string {
  const days = Math.round(Number(env.TASK_RECORD_RETENTION_SECONDS || 2592000) / 86400);
  return `task ${taskId} not found; finished tasks are kept for ${days} days after they end, then their records expire`;
}

/** The delivery watchdog's delay: `QUEUE_WATCHDOG_MS` when it is a positive number, else 5 min. */
function watchdogMs(env: Env): number {
  const configured = Number((env as { QUEUE_WATCHDOG_MS?: string }).QUEUE_WATCHDOG_MS);
  return Number.isFinite(configured) && configured > 0 ? configured : DELIVERY_WATCHDOG_MS;
}

/** Backoff for internal retries (queue sends, D1 flushes): 1 s doubling to 60 s. */
const backoffMs = (tries: number): number => Math.min(1000 * 2 ** tries, 60_000);

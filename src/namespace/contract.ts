import type { DeadLetterFilter } from "../db/dead-letters";
import type { Page, PageRequest } from "../db/keyset";
import type { Delivery, NumberedLogLine } from "../db/types";
import type { Result } from "../errors";
import type { CreateTaskInput, JsonValue, LogLineInput, ProgressInput, Settings, Stats, Task, TaskStatus } from "../tasks/model";
import type { BulkCancelFilter } from "./bulk";
import type { RequestGrant } from "./limits";
import type { TaskMessage } from "./messages";

/**
 * The NamespaceDO's RPC contract: what the Worker, the consumer and the data plane may call, and
 * the values that cross it. The Durable Object implements it; callers import this file and
 * ./stub, never the class, so that nothing outside src/namespace depends on its internals.
 */

export type { BulkCancelFilter, DeadLetterFilter, Delivery, NumberedLogLine, RequestGrant };

/** What a bulk replay answers: the replays made and, when more match, the filter to go on with. */
export interface BulkReplayResult {
  task_ids: string[];
  replayed: number;
  next: DeadLetterFilter | null;
}

/** Lease of a built-in handler's attempt; the consumer renews it well before it runs out. */
export const BUILTIN_LEASE_SECONDS = 60;

/** push: the queue consumer POSTs each task to the processor's url; pull: workers lease tasks (SPEC §6). */
export type ProcessorMode = "push" | "pull";

export interface ProcessorConfig {
  task_type: string;
  mode: ProcessorMode;
  /** Where tasks are pushed; null for a pull processor. */
  url: string | null;
  lease_seconds: number;
  created_at: string;
  updated_at: string;
}

/** Where a page of processors starts: (created_at in ms, task_type). */
export type ProcessorPosition = [number, string];

export interface Webhook {
  webhook_id: string;
  url: string;
  event_types: string[];
  description: string | null;
  is_active: boolean;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** Where a page of endpoints starts: (created_at in ms, webhook_id). */
export type WebhookPosition = [number, string];

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
  /** `lines`: log lines of the attempt written just before it completes, in the same step. */
  | { kind: "complete"; outputs: Record<string, unknown>; lines?: LogLineInput[] }
  | { kind: "fail"; error: { code: string; message: string }; retryable: boolean }
  /** A built-in handler yields: its state is kept and the attempt continues in a new invocation. */
  | { kind: "checkpoint"; state: JsonValue };

/** How a report went: what a consumer reads of its answer. */
export interface ReportReceipt {
  status: TaskStatus;
  lease_expires_at: string | null;
}

export interface ReportAck extends ReportReceipt {
  task: Task;
}

/** One answer of `claimMany`: a claim, or a claim that failed and whose message should be delivered again. */
export type ClaimManyItem = ClaimResult | { claimed: false; reason: string; retry: true };

/** A claim that took an attempt: what a consumer runs. */
export type ClaimedAttempt = Extract<ClaimResult, { claimed: true }>;

/** Claims one claim-ahead takes at most: a queue batch's worth. */
export const MAX_CLAIM_AHEAD = 100;

/** What a consumer asks to claim along with its reports (see `reportAndClaim`). */
export interface ClaimAhead {
  task_types: string[];
  max: number;
}

/**
 * The answers of `reportAndClaim`: one per report, in order, and the attempts claimed ahead.
 * Receipts, without the task's view: a consumer reads only how each report went, and the view
 * of each task, made and sent with each answer, was a good share of the call's work.
 */
export interface ReportsAndClaims {
  results: Result<ReportReceipt>[];
  claims: ClaimedAttempt[];
}

/** One report of `reportMany`: what `report(task_id, token, report)` takes. */
export interface ReportManyItem {
  task_id: string;
  token: string;
  report: Report;
}

/** SPEC §6's pull mode: at most this many tasks a lease call, and this long a long-poll. */
export const MAX_LEASE_TASKS = 100;
export const MAX_LEASE_WAIT_SECONDS = 60;
/** Reports one `POST /v1/callbacks` carries at most. */
export const MAX_BATCH_REPORTS = 100;

/** One leased task, as `POST /v1/processors/{task_type}/lease` answers it. */
export interface Lease {
  task: Task;
  attempt: number;
  lease_expires_at: string;
  timeout_at: string;
  callback: { url: string; token: string };
}

/** The outcome of one report of a `POST /v1/callbacks` batch, in the order given. */
export interface BatchReportResult {
  task_id: string | null;
  status: 200 | 401 | 409;
  task?: Task;
  /** While the attempt goes on, when its lease now ends (a report renews it). */
  lease_expires_at?: string | null;
  error?: { type: string; message: string; details?: unknown };
}

export type WebhookPatch = { url?: string; event_types?: string[]; description?: string | null; is_active?: boolean };

/**
 * Every RPC method of the NamespaceDO, as the object answers it (a stub answers each one
 * asynchronously). A new RPC method is added here and in the class, which `implements` this.
 */
export interface NamespaceRpc {
  configure(namespaceId: string, settings: Partial<Settings>): Promise<Settings>;
  getSettings(): Settings;
  takeRequestTokens(want: number): RequestGrant;

  createTask(input: CreateTaskInput, origin: string, idempotency?: { key: string; requestHash: string }): Promise<Result<Task>>;
  createTasks(
    specs: { key: string; input: CreateTaskInput }[],
    origin: string,
    events?: { type: string; data: Record<string, unknown> }[],
  ): Promise<Result<string[]>>;
  tasksByKeyPrefix(prefix: string): { key: string; task_id: string }[];
  cancelWhereInput(field: string, value: string): Promise<number>;
  findTask(taskId: string): Promise<Result<Task>>;
  liveTasks(taskIds: string[]): Task[];
  cancelTask(taskId: string): Promise<Result<Task>>;
  waitForTask(taskId: string, waitMs: number, etag: string | null): Promise<Result<Task>>;
  stats(): Stats;
  pendingLogs(taskId: string, afterSeq: number): NumberedLogLine[];

  endStreamsOf(keyId: string): number;

  claim(message: Pick<TaskMessage, "task_id" | "attempt" | "slice">): Promise<ClaimResult>;
  report(taskId: string, token: string, report: Report): Promise<Result<ReportAck>>;
  isCallbackToken(taskId: string, token: string): boolean;
  callbackKey(): string;
  deadLetter(message: Pick<TaskMessage, "task_id" | "attempt">): Promise<void>;

  putProcessor(taskType: string, url: string | null, leaseSeconds: number, mode?: ProcessorMode): Promise<Result<{ processor: ProcessorConfig; secret: string | null }>>;
  getProcessor(taskType: string): Result<ProcessorConfig>;
  listProcessors(req: PageRequest<ProcessorPosition>): Page<ProcessorConfig, ProcessorPosition>;
  deleteProcessor(taskType: string): Promise<boolean>;

  createWebhook(input: { url: string; event_types: string[]; description: string | null }): Promise<Result<{ webhook: Webhook; secret: string }>>;
  listWebhooks(req: PageRequest<WebhookPosition>): Page<Webhook, WebhookPosition>;
  getWebhook(webhookId: string): Result<Webhook>;
  updateWebhook(webhookId: string, patch: WebhookPatch): Promise<Result<Webhook>>;
  deleteWebhook(webhookId: string): Promise<boolean>;
  rotateWebhookSecret(webhookId: string): Promise<Result<{ webhook: Webhook; secret: string }>>;
  testWebhook(webhookId: string): Promise<Result<Delivery>>;
  redeliver(webhookId: string, deliveryId: string): Promise<Result<Delivery>>;

  flushNow(): Promise<void>;

  createTaskBatch(inputs: CreateTaskInput[], origin: string, batch: { key: string; requestHash: string }): Promise<Result<Task[]>>;
  leaseTasks(taskType: string, maxTasks: number, waitMs: number, origin: string): Promise<Result<Lease[]>>;
  reportBatch(reports: { token: string; report: Report }[]): Promise<BatchReportResult[]>;

  claimMany(messages: Pick<TaskMessage, "task_id" | "attempt" | "slice">[]): Promise<ClaimManyItem[]>;
  reportMany(items: ReportManyItem[]): Promise<Result<ReportAck>[]>;
  reportAndClaim(items: ReportManyItem[], ahead: ClaimAhead): Promise<ReportsAndClaims>;
  bulkCancel(filter: BulkCancelFilter): Promise<{ cancelled: number; steps: number }>;
  replayTasks(sources: Task[], origin: string): Promise<Result<Task[]>>;
  bulkReplay(filter: DeadLetterFilter, origin: string): Promise<Result<BulkReplayResult>>;
}

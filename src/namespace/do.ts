import { DurableObject } from "cloudflare:workers";
import type { Page, PageRequest } from "../db/keyset";
import type { NumberedLogLine } from "../db/types";
import { fail, ok, type Result } from "../errors";
import type { CreateTaskInput, Settings, Stats, Task } from "../tasks/model";
import { AttemptBatches } from "./attempt-batches";
import { attemptsWithTasks } from "./attempt-rows";
import { Attempts } from "./attempts";
import type { Clock } from "./clock";
import type {
  BatchReportResult,
  ClaimAhead,
  ClaimManyItem,
  BulkCancelFilter,
  BulkReplayResult,
  DeadLetterFilter,
  ClaimResult,
  Delivery,
  Lease,
  NamespaceRpc,
  ProcessorConfig,
  ProcessorMode,
  ProcessorPosition,
  Report,
  ReportAck,
  ReportManyItem,
  ReportsAndClaims,
  Webhook,
  WebhookPatch,
  WebhookPosition,
} from "./contract";
import { NamespaceCore } from "./core";
import { Deliveries } from "./deliveries";
import { type BulkCancelResult, FairOps } from "./fair-ops";
import { quotaExceeded, type RequestGrant } from "./limits";
import type { TaskMessage } from "./messages";
import { PullMode } from "./pull-mode";
import { Scheduler } from "./scheduler";
import { StreamGate } from "./stream-gate";
import type { EventStreams } from "./streams";
import { TaskOps } from "./tasks";
import { toWebhook } from "./webhooks";

/**
 * The single authority over one namespace's tasks: the state machine, admission under the
 * concurrency limit, leases, timeouts, retries, and the one alarm that multiplexes every timer.
 * This class only answers RPC and the runtime's calls; each job lives in its own part.
 */
export class NamespaceDO extends DurableObject<Env> implements NamespaceRpc {
  protected readonly core: NamespaceCore;
  readonly clock: Clock;
  /** The outbound I/O (queue sends, D1 batches), replaceable by tests: see NamespaceCore.io. */
  readonly io: NamespaceCore["io"];
  private readonly streams: EventStreams;
  private readonly tasks: TaskOps;
  private readonly attempts: Attempts;
  protected readonly deliveries: Deliveries;
  protected readonly gate: StreamGate;
  private readonly scheduler: Scheduler;
  private readonly pull: PullMode;
  private readonly batches: AttemptBatches;
  protected readonly fair: FairOps;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.core = new NamespaceCore(ctx, env);
    this.clock = this.core.clock;
    this.io = this.core.io;
    this.streams = this.core.streams;
    // Clients may ping an idle socket; the runtime answers without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    this.tasks = new TaskOps(this.core);
    this.attempts = new Attempts(this.core);
    this.deliveries = new Deliveries(this.core);
    this.gate = new StreamGate(this.core);
    this.scheduler = new Scheduler(this.core, this.attempts, this.deliveries, this.gate);
    this.batches = new AttemptBatches(this.core, this.attempts);
    this.pull = new PullMode(this.core, this.tasks, this.attempts, this.gate, this.batches);
    this.fair = new FairOps(this.core, this.tasks, this.scheduler);
  }

  /** Runs `fn` in one transaction, then arms the alarm for whatever it scheduled. */
  private async changed<T>(fn: () => T): Promise<T> {
    const result = this.ctx.storage.transactionSync(fn);
    await this.core.armAlarm();
    return result;
  }

  // --- settings ------------------------------------------------------------------------------

  /** Stores the namespace's id and settings; raising the limit admits waiting tasks at once. */
  configure(namespaceId: string, settings: Partial<Settings>): Promise<Settings> {
    return this.tasks.configure(namespaceId, settings);
  }

  getSettings(): Settings {
    return this.core.settings;
  }

  /**
   * Takes up to `want` tokens from the namespace's request bucket for a Worker to spend on API
   * requests; a grant of 0 means the request at hand is beyond the rate limit.
   */
  takeRequestTokens(want: number): RequestGrant {
    const { requests_per_second: rps } = this.core.settings;
    return this.core.requests.take(Math.max(1, Math.min(want, rps)), rps);
  }

  // --- tasks ---------------------------------------------------------------------------------

  createTask(input: CreateTaskInput, origin: string, idempotency?: { key: string; requestHash: string }): Promise<Result<Task>> {
    return this.tasks.createTask(input, origin, idempotency);
  }

  createTasks(specs: { key: string; input: CreateTaskInput }[], origin: string, events: { type: string; data: Record<string, unknown> }[] = []): Promise<Result<string[]>> {
    return this.tasks.createTasks(specs, origin, events);
  }

  tasksByKeyPrefix(prefix: string): { key: string; task_id: string }[] {
    return this.tasks.tasksByKeyPrefix(prefix);
  }

  cancelWhereInput(field: string, value: string): Promise<number> {
    return this.tasks.cancelWhereInput(field, value);
  }

  findTask(taskId: string): Promise<Result<Task>> {
    return this.core.findTask(taskId);
  }

  liveTasks(taskIds: string[]): Task[] {
    return this.tasks.liveTasks(taskIds);
  }

  cancelTask(taskId: string): Promise<Result<Task>> {
    return this.tasks.cancelTask(taskId);
  }

  stats(): Stats {
    return this.tasks.stats();
  }

  pendingLogs(taskId: string, afterSeq: number): NumberedLogLine[] {
    return this.tasks.pendingLogs(taskId, afterSeq);
  }

  // --- streams and long-polls ----------------------------------------------------------------

  waitForTask(taskId: string, waitMs: number, etag: string | null): Promise<Result<Task>> {
    return this.gate.waitForTask(taskId, waitMs, etag);
  }

  /** Opens an event stream (SSE or WebSocket): the one HTTP entry of the object. */
  override fetch(request: Request): Promise<Response> {
    return this.gate.open(request);
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

  endStreamsOf(keyId: string): number {
    return this.gate.endStreamsOf(keyId);
  }

  // --- attempts ------------------------------------------------------------------------------

  /** Claims a queued task for the attempt a queue message carries (see Attempts.claim). */
  claim(message: Pick<TaskMessage, "task_id" | "attempt" | "slice">): Promise<ClaimResult> {
    const now = this.clock.now();
    const token = this.core.callbackTokens.mint(message.task_id);
    return this.changed(() => this.attempts.claim(message, token, now));
  }

  /** Applies a report of one attempt, authenticated by that attempt's token (see Attempts.report). */
  report(taskId: string, token: string, report: Report): Promise<Result<ReportAck>> {
    const now = this.clock.now();
    const tokenHash = this.attempts.tokenHashes.of(token);
    // A bulk step of one, as each report of reportMany is: the outbox flush is asked for once,
    // not after each of its events, log lines and snapshots (a statement each, issue 11). The
    // token's attempt and its task are read together, in that step, as reportBatch reads them.
    return this.changed(() =>
      this.core.store.bulk(() => this.attempts.report(taskId, tokenHash, report, now, attemptsWithTasks(this.core.sql, [tokenHash]).get(tokenHash) ?? { attempt: null })),
    );
  }

  /** Asked by the Worker about a token of the unsigned format that tokens had before signed ones. */
  isCallbackToken(taskId: string, token: string): boolean {
    return this.attempts.isCallbackToken(taskId, token);
  }

  /** The key callback tokens are signed with: a Worker fetches it once, then checks tokens itself. */
  callbackKey(): string {
    return this.core.callbackTokens.key();
  }

  /** The dead-letter queue gave up on this attempt's message: the task can never be claimed. */
  deadLetter(message: Pick<TaskMessage, "task_id" | "attempt">): Promise<void> {
    const now = this.clock.now();
    return this.changed(() => this.attempts.deadLetter(message, now));
  }

  // --- processors ----------------------------------------------------------------------------

  /** Creates or replaces a processor; its secret is made once and returned only then. */
  putProcessor(taskType: string, url: string | null, leaseSeconds: number, mode: ProcessorMode = "push"): Promise<Result<{ processor: ProcessorConfig; secret: string | null }>> {
    const now = this.clock.now();
    return this.changed(() => this.pull.putProcessor(taskType, url, leaseSeconds, mode, now));
  }

  getProcessor(taskType: string): Result<ProcessorConfig> {
    return this.core.processors.get(taskType);
  }

  listProcessors(req: PageRequest<ProcessorPosition>): Page<ProcessorConfig, ProcessorPosition> {
    return this.core.processors.list(req);
  }

  deleteProcessor(taskType: string): Promise<boolean> {
    const now = this.clock.now();
    return this.changed(() => this.pull.deleteProcessor(taskType, now));
  }

  // --- webhooks ------------------------------------------------------------------------------

  /** Registers an endpoint; its secret is returned only here and on rotation. */
  async createWebhook(input: { url: string; event_types: string[]; description: string | null }): Promise<Result<{ webhook: Webhook; secret: string }>> {
    const quota = this.core.settings.max_webhooks;
    if (this.core.sql.count("SELECT COUNT(*) AS n FROM webhooks") >= quota) return quotaExceeded("max_webhooks", quota, "webhooks");
    return ok(this.core.webhooks.create(input, this.clock.now()));
  }

  listWebhooks(req: PageRequest<WebhookPosition>): Page<Webhook, WebhookPosition> {
    return this.core.webhooks.list(req);
  }

  getWebhook(webhookId: string): Result<Webhook> {
    const row = this.core.webhooks.get(webhookId);
    return row ? ok(toWebhook(row)) : fail("not_found", `webhook ${webhookId} not found`);
  }

  async updateWebhook(webhookId: string, patch: WebhookPatch): Promise<Result<Webhook>> {
    const now = this.clock.now();
    const updated = await this.changed(() => this.core.webhooks.update(webhookId, patch, now));
    return updated ? ok(updated) : fail("not_found", `webhook ${webhookId} not found`);
  }

  deleteWebhook(webhookId: string): Promise<boolean> {
    const now = this.clock.now();
    return this.changed(() => this.core.webhooks.remove(webhookId, now));
  }

  async rotateWebhookSecret(webhookId: string): Promise<Result<{ webhook: Webhook; secret: string }>> {
    const rotated = this.ctx.storage.transactionSync(() => this.core.webhooks.rotate(webhookId, this.clock.now()));
    return rotated ? ok(rotated) : fail("not_found", `webhook ${webhookId} not found`);
  }

  testWebhook(webhookId: string): Promise<Result<Delivery>> {
    return this.deliveries.testWebhook(webhookId);
  }

  redeliver(webhookId: string, deliveryId: string): Promise<Result<Delivery>> {
    return this.deliveries.redeliver(webhookId, deliveryId);
  }

  // --- the alarm and the outbox --------------------------------------------------------------

  override alarm(): Promise<void> {
    return this.scheduler.alarm();
  }

  /** Flushes the outbox to D1 now (the list endpoint calls it before a walk begins). */
  flushNow(): Promise<void> {
    return this.scheduler.flushNow();
  }

  // --- pull mode and batches (see PullMode) ---------------------------------------------------

  createTaskBatch(inputs: CreateTaskInput[], origin: string, batch: { key: string; requestHash: string }): Promise<Result<Task[]>> {
    return this.pull.createTaskBatch(inputs, origin, batch);
  }

  leaseTasks(taskType: string, maxTasks: number, waitMs: number, origin: string): Promise<Result<Lease[]>> {
    return this.pull.leaseTasks(taskType, maxTasks, waitMs, origin);
  }

  reportBatch(reports: { token: string; report: Report }[]): Promise<BatchReportResult[]> {
    return this.pull.reportBatch(reports);
  }

  // --- consumer batches (issue 11, see AttemptBatches) ---------------------------------------

  claimMany(messages: Pick<TaskMessage, "task_id" | "attempt" | "slice">[]): Promise<ClaimManyItem[]> {
    return this.batches.claimMany(messages);
  }

  reportMany(items: ReportManyItem[]): Promise<Result<ReportAck>[]> {
    return this.batches.reportMany(items);
  }

  reportAndClaim(items: ReportManyItem[], ahead: ClaimAhead): Promise<ReportsAndClaims> {
    return this.batches.reportAndClaim(items, ahead);
  }

  // --- fairness, scheduled starts, bulk cancel and replay (see FairOps) -------------------------

  bulkCancel(filter: BulkCancelFilter): Promise<BulkCancelResult> {
    return this.fair.bulkCancel(filter);
  }

  replayTasks(sources: Task[], origin: string): Promise<Result<Task[]>> {
    return this.fair.replayTasks(sources, origin);
  }

  bulkReplay(filter: DeadLetterFilter, origin: string): Promise<Result<BulkReplayResult>> {
    return this.fair.bulkReplay(filter, origin);
  }
}

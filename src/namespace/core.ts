import { config } from "../config";
import { fail, ok, type Result } from "../errors";
import { getRecord } from "../db/records";
import { DEFAULT_SETTINGS, type Settings, type Task } from "../tasks/model";
import { CallbackTokens } from "./callback-tokens";
import { Clock } from "./clock";
import { nextDue } from "./due";
import { RequestBucket, UnfinishedTasks } from "./limits";
import type { TaskMessage } from "./messages";
import { ProcessorStore } from "./processors";
import { LeaseWaiters } from "./pull";
import { migrate } from "./schema";
import { Sql } from "./sql";
import { EventStreams } from "./streams";
import { TaskStore } from "./store";
import type { TaskRow } from "./task-row";
import { Waiters } from "./waiters";
import { WebhookStore } from "./webhooks";

/**
 * SPEC §5's delivery watchdog: a queued task that no consumer has claimed this long after its
 * message went out is sent again, so a message the queue lost cannot hold a slot forever.
 * `QUEUE_WATCHDOG_MS` overrides it (the crash test shortens it).
 */
export const DELIVERY_WATCHDOG_MS = 5 * 60_000;

/**
 * What every part of one namespace's Durable Object shares: its storage and the stores over it,
 * the clock, the outbound I/O, the settings, and the one alarm. The parts (tasks, attempts,
 * scheduler, deliveries, stream gate) each take this and do one job; NamespaceDO only answers RPC.
 */
export class NamespaceCore {
  readonly clock = new Clock();
  readonly sql: Sql;
  readonly store: TaskStore;
  readonly webhooks: WebhookStore;
  readonly processors: ProcessorStore;
  /** The key processor callback tokens are signed with, and their minting. */
  readonly callbackTokens: CallbackTokens;
  readonly streams: EventStreams;
  readonly waiters = new Waiters();
  /** Lease calls of pull workers waiting for work (SPEC §6); they count as long-polls. */
  readonly leaseWaiters = new LeaseWaiters();
  namespaceId = "";
  settings: Settings = { ...DEFAULT_SETTINGS };
  /**
   * The Durable Object's outbound I/O, in one place so that tests can make it fail: a queue
   * send or a D1 write that throws must never lose what it was carrying.
   */
  readonly io = {
    sendBatch: (messages: MessageSendRequest<TaskMessage>[]): Promise<unknown> => this.env.TASKS_QUEUE.sendBatch(messages),
    d1Batch: (statements: D1PreparedStatement[]): Promise<unknown> => this.env.DB.batch(statements),
  };
  /** While set (withAdmissionAfter), admit() only notes that it is owed. */
  private admissionsHeld = false;
  private admissionOwed = false;
  /**
   * Set for one synchronous step that claims ahead (AttemptBatches.reportAndClaim): the tasks of
   * these types that admission queues get no send timer yet, their ids are kept here, the step's
   * claim-ahead takes them, and the step sets the timers of those it left (releaseSends).
   */
  private heldSends: { types: ReadonlySet<string>; tasks: HeldSend[] } | null = null;
  /** The alarm time last set (on the clock's time line), null when none is pending. */
  private alarmAt: number | null = null;
  /** When the open streams' keys are next checked against D1 (clock time); null while none is open. */
  keyCheckAt: number | null = null;
  readonly watchdogMs: number;
  /** SPEC §3's request bucket of the namespace; Workers take tokens from it in small grants. */
  readonly requests = new RequestBucket(() => this.clock.now());
  readonly unfinished = new UnfinishedTasks(
    () => this.sql.count("SELECT COUNT(*) AS n FROM tasks WHERE status IN ('created', 'queued', 'processing')"),
    () => this.clock.now(),
  );

  constructor(
    readonly ctx: DurableObjectState,
    readonly env: Env,
  ) {
    this.sql = new Sql(ctx.storage.sql);
    this.callbackTokens = new CallbackTokens(this.sql, () => this.namespaceId);
    const retentionMs = config(env).recordRetentionMs;
    this.store = new TaskStore(this.sql, () => this.namespaceId, retentionMs, (eventId, type, at) => {
      if (type === "task.completed" || type === "task.failed" || type === "task.cancelled") this.unfinished.finished();
      if (type === "task.queued") this.leaseWaiters.wakeAll();
      this.webhooks.fanOut(eventId, type, at);
      this.streams.notify();
      this.waiters.wake((taskId) => this.store.get(taskId)?.version ?? Infinity);
    }, () => this.settings.max_concurrent_per_key, () => this.clock.now());
    const keepAliveMs = config(env).streamKeepAliveMs ?? undefined;
    this.watchdogMs = watchdogMs(env);
    this.streams = new EventStreams(this.sql, ctx, keepAliveMs);
    this.webhooks = new WebhookStore(this.sql, (at) => this.store.scheduleFlush(at));
    this.processors = new ProcessorStore(this.sql);
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, ctx.storage);
      // Made here, outside any transaction, so that a key never lives only in a rolled-back one.
      this.callbackTokens.key();
      const meta = new Map(this.sql.all<{ key: string; value: string }>("SELECT key, value FROM meta").map((r) => [r.key, r.value]));
      this.namespaceId = meta.get("namespace_id") ?? ctx.id.name ?? "";
      const saved = meta.get("settings");
      if (saved) this.settings = { ...DEFAULT_SETTINGS, ...(JSON.parse(saved) as Partial<Settings>) };
    });
  }

  /** Sets the alarm to the earliest due timer unless an earlier alarm is already pending. */
  async armAlarm(): Promise<void> {
    // An alarm due already runs every timer due when it runs, and arms for the rest at its end:
    // no timer needs looking at (a query a change, issue 11).
    if (this.alarmAt !== null && this.alarmAt <= this.clock.now()) return;
    const due = nextDue(this.sql);
    const next = due === null ? this.keyCheckAt : this.keyCheckAt === null ? due : Math.min(due, this.keyCheckAt);
    if (next === null || (this.alarmAt !== null && this.alarmAt <= next)) return;
    this.alarmAt = next;
    await this.ctx.storage.setAlarm(this.clock.toWall(next));
  }

  /** The alarm went off: none is pending until the next armAlarm. */
  alarmFired(): void {
    this.alarmAt = null;
  }

  /**
   * Admits ready tasks while slots are free: highest priority first, round-robin across the
   * concurrency keys of a priority (store.fair), oldest first within a key; a key at
   * max_concurrent_per_key waits. Each one becomes `queued` with a send timer due now, so the
   * alarm puts it on the queue; a pulled type's has none (pull workers lease it).
   */
  admit(now: number): void {
    if (this.admissionsHeld) {
      this.admissionOwed = true;
      return;
    }
    const free = this.settings.max_concurrent_tasks - this.store.activeCount();
    if (free <= 0) return;
    this.store.fair.admitRun(free, (row) => {
      this.queued(this.store.transition(row, "queued", { queued_at: row.queued_at ?? now }, now), now);
    });
  }

  /**
   * Whether a new ready task of `key` would be admitted the moment it joined the fair queue: a
   * slot is free, no ready task waits that admission could take first, and its key is below
   * its limit. (Admission runs after every change that frees a slot, so a free slot and a
   * waiting task that could take it are seen together only while admissions are held.)
   */
  admitsAtOnce(key: string): boolean {
    if (this.admissionsHeld) return false;
    return this.settings.max_concurrent_tasks - this.store.activeCount() > 0 && this.store.fair.next() === null && !this.store.fair.isBlocked(key);
  }

  /** A task just admitted goes on: a send timer due now, or, for a pulled type, nothing (it waits, leasable, for a worker). */
  queued(row: TaskRow, now: number): void {
    if (this.heldSends?.types.has(row.task_type)) this.heldSends.tasks.push({ task_id: row.task_id, attempt: row.attempt });
    else if (this.processors.processorRow(row.task_type)?.mode !== "pull") this.store.setTimer(row.task_id, "send", now);
  }

  /**
   * Runs `fn` (synchronous: a batch of reports, each in its own transaction) with admission
   * held back to its end, then admits once for every slot the batch freed: one count of the
   * active tasks instead of one a finished task. Nothing else runs in between, so no task waits
   * longer for it, and the limit holds throughout. The caller's step is one transaction: an
   * admission that throws fails it whole, reports included, as a single report's would, and
   * the reports are sent again (no slot is left freed with nobody to fill it).
   */
  withAdmissionAfter<T>(fn: () => T, now: () => number): T {
    if (this.admissionsHeld) return fn();
    this.admissionsHeld = true;
    let result: T;
    let owed: boolean;
    try {
      result = fn();
    } finally {
      this.admissionsHeld = false;
      owed = this.admissionOwed;
      this.admissionOwed = false;
    }
    if (owed) this.admit(now());
    return result;
  }

  /**
   * Runs `fn` (synchronous) with the sends of the tasks of `types` it admits held: `fn` gets
   * the list of those tasks, in the order admitted, which grows as it admits, and may claim
   * them. Whatever it does, and however it ends, each held task still queued gets its send
   * timer, due `now`, before this returns: a queued task is never left without one.
   */
  holdingSends<T>(types: ReadonlySet<string>, now: number, fn: (held: readonly HeldSend[]) => T): T {
    if (this.heldSends || types.size === 0) return fn([]);
    const held = { types, tasks: [] as HeldSend[] };
    this.heldSends = held;
    try {
      return fn(held.tasks);
    } finally {
      this.heldSends = null;
      if (held.tasks.length > 0) {
        this.sql.run(
          `INSERT INTO timers (task_id, kind, due_at, tries) SELECT task_id, 'send', ?, 0 FROM tasks
           WHERE task_id IN (SELECT value FROM json_each(?)) AND status = 'queued'
           ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at, tries = excluded.tries`,
          now, JSON.stringify(held.tasks.map((t) => t.task_id)),
        );
      }
    }
  }

  /** A task of this namespace, live here or retained in D1. */
  async findTask(taskId: string): Promise<Result<Task>> {
    const row = this.store.get(taskId);
    if (row) return ok(this.store.toTask(row));
    const record = await getRecord(this.env.DB, this.namespaceId, taskId, this.clock.now());
    return record ? ok(record) : fail("not_found", notFoundMessage(taskId, this.env));
  }
}

/** A task admitted while its send was held (NamespaceCore.holdingSends). */
export interface HeldSend {
  task_id: string;
  attempt: number;
}

/** The 404 of an unknown task says that records expire: a purged task looks just like it. */
export function notFoundMessage(taskId: string, env: Env): string {
  const days = Math.round(config(env).recordRetentionMs / 86_400_000);
  return `task ${taskId} not found; finished tasks are kept for ${days} days after they end, then their records expire`;
}

/** The delivery watchdog's delay: `QUEUE_WATCHDOG_MS` when it is a positive number, else 5 min. */
function watchdogMs(env: Env): number {
  return config(env).queueWatchdogMs ?? DELIVERY_WATCHDOG_MS;
}

/** Backoff for internal retries (queue sends, D1 flushes): 1 s doubling to 60 s. */
export const backoffMs = (tries: number): number => Math.min(1000 * 2 ** tries, 60_000);

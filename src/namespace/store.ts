import { newOrderedId } from "../ids";
import {
  canTransition,
  LIMITS,
  type LogLevel,
  type Task,
  type TaskStatus,
  type Waiting,
} from "../tasks/model";
import { iso } from "../time";
import { BulkStep, createdByPriority, takeSeq } from "./bulk-step";
import { insertEvent, insertLog, upsertRecord } from "./deferred-writes";
import { FairQueue, NO_KEY } from "./fairness";
import type { Sql } from "./sql";
import { eventJson, taskJson, taskOf } from "./task-view";
import { queuePosition, waitingOf } from "./waiting";
import {
  InvalidTransition, insertValues, NAMESPACE_TIMER, type NewTaskRow, TASK_INSERT, TASK_TRANSITION, type TaskPatch, type TaskRow, type TimerKind,
  type TimerRow, transitionValues, truncateUtf8,
} from "./task-row";

// The row types live in ./task-row; they are exported here too, where callers have always found them.
export { EMPTY_PROGRESS, InvalidTransition, NAMESPACE_TIMER, type TaskPatch, type TaskRow, type TimerKind, type TimerRow, truncateUtf8 } from "./task-row";

/**
 * How long log lines gather in the outbox before a flush to D1: one batched write instead of
 * one per line. Reads merge the outbox, so the delay is never visible to clients.
 */
const FLUSH_DELAY_MS = 500;

/**
 * Synchronous task state over the Durable Object's SQLite: rows, the state machine, events,
 * timers and the log outbox. Every method runs without awaiting, so a caller's sequence of
 * calls commits as one atomic step.
 */
export class TaskStore {
  /** Fair admission (SPEC §5): the groups of ready tasks by key and priority, each key's slots. */
  readonly fair: FairQueue;
  /** Set while a bulk step runs (see bulk()). */
  private bulkStep: BulkStep | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly namespaceId: () => string,
    /** How long a terminal task's record stays in D1; the outbox flush dates records with it. */
    readonly recordRetentionMs: number,
    /** Called for every event stored, in the same transaction (a bulk step's at its end): webhook deliveries fan out here. */
    private readonly onEvent: (eventId: string, eventType: string, at: number) => void = () => undefined,
    perKeyLimit: () => number | null = () => null,
    /** The clock `waiting` is computed against. */
    private readonly now: () => number = () => Date.now(),
  ) {
    this.fair = new FairQueue(sql, perKeyLimit);
  }

  /**
   * Runs `fn` (inside the caller's transaction) as one bulk step (BulkStep): its events, lines
   * and record marks are written at the end in a few statements, then its events are told to
   * the object; the flush and the task counter are written once; each insert's queue position
   * comes from per-priority totals read once, not from a count over the backlog.
   */
  bulk<T>(fn: () => T): T {
    if (this.bulkStep) return fn();
    const step = (this.bulkStep = new BulkStep(this.sql));
    let result: T;
    try {
      result = fn();
    } finally {
      this.bulkStep = null;
    }
    step.end((dueAt) => this.setTimerIfLater(NAMESPACE_TIMER, "flush", dueAt));
    for (const [eventId, type, at] of step.stored) this.onEvent(eventId, type, at);
    return result;
  }

  /** Runs one item of a bulk step (in its own transaction): if it throws, its deferred rows and events go with it. */
  bulkItem<T>(fn: () => T): T {
    const step = this.bulkStep;
    if (!step) return fn();
    const [mark, stored] = [step.writes.mark(), step.stored.length];
    try {
      return fn();
    } catch (err) {
      step.writes.rollback(mark);
      step.rows.clear();
      step.stored.length = stored;
      throw err;
    }
  }

  /** Asks for an outbox flush at `dueAt`; a bulk step asks once, at its end. */
  private askFlush(dueAt: number): void {
    if (this.bulkStep) this.bulkStep.askFlush(dueAt);
    else this.setTimerIfLater(NAMESPACE_TIMER, "flush", dueAt);
  }

  get(taskId: string): TaskRow | null {
    return this.sql.one<TaskRow>("SELECT * FROM tasks WHERE task_id = ?", taskId);
  }

  /** The row of a task the running bulk step inserted or changed, as it stands now; else undefined. */
  stepRow(taskId: string): TaskRow | undefined {
    return this.bulkStep?.rows.get(taskId);
  }

  /**
   * Stores a new task. With `queuedAt`, a ready task a slot waits for (NamespaceCore.admitsAtOnce)
   * is published created, then queued, as insert and transition would, but its row is written
   * once and it never enters the fair queue (six statements fewer than joining it to be taken out).
   */
  insert(given: NewTaskRow, queuedAt?: number): TaskRow {
    const row = { concurrency_key: NO_KEY, run_at: null, replay_of_task_id: null, ...given };
    // A task whose run_at is ahead waits outside the fair queue until the alarm releases it.
    const scheduled = row.status === "created" && row.run_at !== null && row.run_at > row.created_at ? 1 : 0;
    const ready = row.status === "created" && scheduled === 0;
    if (queuedAt !== undefined && !ready) throw new Error(`task ${row.task_id} is not ready: it cannot be admitted as it is stored`);
    const step = this.bulkStep;
    const seq = takeSeq(this.sql, step);
    const logCount = this.appendLog({ ...row, log_count: 0 }, "info", `created (${row.task_type}, priority ${row.priority})`, row.created_at);
    const inserted: TaskRow = { ...row, seq, log_count: logCount, version: 1, progress_event_at: null, checkpoint: null, continuation: 0, scheduled };
    if (queuedAt === undefined) {
      const [text, params] = TASK_INSERT.bind(insertValues(inserted));
      this.sql.run(text, ...params);
      if (ready) this.fair.enqueue(row.concurrency_key, row.priority);
      step?.inserted(seq, row.priority, row.status === "created");
      this.published(inserted, row.created_at, true);
      return inserted;
    }
    // The step's totals of created tasks start from the fair queue, which this task never
    // joins: read before it counts itself in, its queue position as created includes it.
    step?.createdTotals();
    step?.inserted(seq, row.priority, true);
    this.published(inserted, row.created_at, true);
    const queued = this.moved(inserted, "queued", { queued_at: queuedAt }, queuedAt);
    const [text, params] = TASK_INSERT.bind(insertValues(queued));
    this.sql.run(text, ...params);
    this.fair.slots(row.concurrency_key, 1);
    step?.leftCreated(row.priority);
    this.published(queued, queuedAt, true);
    return queued;
  }

  /**
   * Moves a task to `to` if the state machine allows it, applying `patch`, emitting the
   * `task.<status>` event and logging the transition. Throws InvalidTransition otherwise.
   */
  transition(row: TaskRow, to: TaskStatus, patch: TaskPatch, at: number, note?: string): TaskRow {
    const next = this.moved(row, to, patch, at, note);
    const [text, params] = TASK_TRANSITION.bind(transitionValues(next));
    this.sql.run(text, ...params);
    this.fair.onTransition(row, to, at);
    if (row.status === "created") this.bulkStep?.leftCreated(row.priority);
    this.published(next, at, true);
    return next;
  }

  /** A transition's new row, with its log line written: what transition stores. */
  private moved(row: TaskRow, to: TaskStatus, patch: TaskPatch, at: number, note?: string): TaskRow {
    if (!canTransition(row.status, to)) throw new InvalidTransition(row.status, to);
    const next: TaskRow = { ...row, ...patch, status: to, updated_at: at, version: row.version + 1 };
    const level: LogLevel = to === "failed" ? "error" : "info";
    next.log_count = this.appendLog(next, level, `${row.status} → ${to}${note ? `: ${note}` : ""}`, at);
    return next;
  }

  /** Changes what a client sees of a task without a transition (progress, a new timeout). */
  touch(row: TaskRow, patch: Pick<TaskPatch, "progress" | "timeout_at">, at: number): TaskRow {
    const next: TaskRow = { ...row, ...patch, updated_at: at, version: row.version + 1 };
    this.sql.run(
      "UPDATE tasks SET progress = ?, timeout_at = ?, updated_at = ?, version = ? WHERE task_id = ?",
      next.progress, next.timeout_at, at, next.version, row.task_id,
    );
    this.published(next, at, false);
    return next;
  }

  /** Moves the lease's end; invisible to clients, so neither updated_at nor the version changes. */
  renewLease(row: TaskRow, leaseExpiresAt: number): TaskRow {
    this.sql.run("UPDATE tasks SET lease_expires_at = ? WHERE task_id = ?", leaseExpiresAt, row.task_id);
    this.setTimer(row.task_id, "lease", leaseExpiresAt);
    this.bulkStep?.rows.delete(row.task_id);
    return { ...row, lease_expires_at: leaseExpiresAt };
  }

  /** A change clients can see: a transition's event, and a mark that D1 is owed the task's record (see outbox.ts). */
  private published(row: TaskRow, at: number, transition: boolean): void {
    this.bulkStep?.rows.set(row.task_id, row);
    // The queue position at the change, which the row cannot give at the flush. `waiting` is a
    // live view, computed on reads: events and records carry null.
    const position = this.positionAtChange(row);
    if (transition) this.emit(row, taskJson(row, this.namespaceId(), this.recordRetentionMs, { queue_position: position, waiting: null }), at);
    if (this.bulkStep) this.bulkStep.writes.record(row.task_id, row.version, position);
    else upsertRecord(this.sql, row.task_id, row.version, position);
    this.askFlush(at + FLUSH_DELAY_MS);
  }

  /** A created task's queue position now (cheap for a bulk step's newest task); null for any other. */
  private positionAtChange(row: TaskRow): number | null {
    return row.status !== "created" ? null : (this.bulkStep?.positionOfNewest(row) ?? queuePosition(this.sql, row));
  }

  /**
   * The client-facing task. `view` gives a created task's queue position and waiting when the
   * caller counted them for many tasks at once (a batch's answer).
   */
  toTask(row: TaskRow, live = true, view?: { queue_position: number; waiting: Waiting | null }): Task {
    const created = row.status === "created";
    return taskOf(row, this.namespaceId(), this.recordRetentionMs, {
      queue_position: !created ? null : (view?.queue_position ?? this.positionAtChange(row)),
      waiting: !created || !live ? null : view ? view.waiting : waitingOf(this.sql, this.fair, row, this.now()),
    });
  }

  /** Created tasks by priority, exact: a bulk step's running totals, else read now. */
  createdByPriority(): ReadonlyMap<number, number> {
    return this.bulkStep?.createdTotals() ?? createdByPriority(this.sql);
  }

  countByStatus(status: TaskStatus): number {
    return this.sql.count("SELECT COUNT(*) AS n FROM tasks WHERE status = ?", status);
  }

  activeCount(): number {
    return this.sql.count("SELECT COUNT(*) AS n FROM tasks WHERE status IN ('queued', 'processing')");
  }

  // --- log lines -----------------------------------------------------------------------------

  /** Adds log lines outside a transition and returns the task with its new line count. */
  log(row: TaskRow, lines: { level: LogLevel; message: string }[], at: number): TaskRow {
    const logged = this.logBefore(row, lines, at);
    if (logged.log_count !== row.log_count) this.sql.run("UPDATE tasks SET log_count = ? WHERE task_id = ?", logged.log_count, row.task_id);
    this.bulkStep?.rows.delete(row.task_id);
    return logged;
  }

  /**
   * Adds log lines that a transition of the returned row follows at once: the transition stores
   * the line count with the rest of its change (a completion that carries its handler's last
   * lines writes its row once, not twice).
   */
  logBefore(row: TaskRow, lines: { level: LogLevel; message: string }[], at: number): TaskRow {
    let logCount = row.log_count;
    for (const line of lines) logCount = this.appendLog({ ...row, log_count: logCount }, line.level, line.message, at);
    return { ...row, log_count: logCount };
  }

  /**
   * Writes one line to the outbox as line `log_count + 1` and returns the new count; the caller
   * stores it. Lines past LIMITS.logLinesPerTask are dropped, and the first dropped one is
   * replaced by a single line saying so.
   */
  private appendLog(row: Pick<TaskRow, "task_id" | "attempt" | "log_count">, level: LogLevel, message: string, at: number): number {
    const count = row.log_count;
    if (count > LIMITS.logLinesPerTask) return count;
    const line =
      count === LIMITS.logLinesPerTask
        ? { level: "warn" as LogLevel, message: `log limit of ${LIMITS.logLinesPerTask} lines reached; further lines are dropped` }
        : { level, message: truncateUtf8(message, LIMITS.logLineBytes) };
    const seq = count + 1;
    const payload = JSON.stringify({ seq, attempt: row.attempt, level: line.level, message: line.message, at });
    if (this.bulkStep) this.bulkStep.writes.log(row.task_id, payload);
    else insertLog(this.sql, row.task_id, payload);
    this.askFlush(at + FLUSH_DELAY_MS);
    return seq;
  }

  // --- events --------------------------------------------------------------------------------

  /** Stores the event of a task's change from its JSON text (taskJson). */
  private emit(row: TaskRow, json: string, at: number, type = `task.${row.status}`): void {
    this.storeEvent(type, row.task_id, `{"task":${json}}`, at);
  }

  /**
   * Stores an event, numbered by the namespace's sequence, with the body its webhook deliveries
   * and streams carry; `data` may come as its JSON text already.
   */
  storeEvent(type: string, taskId: string | null, data: Record<string, unknown> | string, at: number): string {
    const eventId = this.storeEventOnly(type, taskId, data, at);
    if (this.bulkStep) this.bulkStep.stored.push([eventId, type, at]);
    else this.onEvent(eventId, type, at);
    return eventId;
  }

  /** Stores an event without fanning it out (a `webhook.test` goes to one endpoint only). */
  storeEventOnly(type: string, taskId: string | null, data: Record<string, unknown> | string, at: number): string {
    const eventId = newOrderedId("evt", at);
    const body = eventJson({ id: eventId, type, created_at: iso(at), namespace_id: this.namespaceId() }, data);
    if (this.bulkStep) this.bulkStep.writes.event(eventId, type, taskId, at, body);
    else insertEvent(this.sql, eventId, type, taskId, at, body);
    return eventId;
  }

  /**
   * Emits `task.progress` at most once a second a task: at once when the last one is a second
   * old, else a timer emits the latest progress when the second is up.
   */
  progressed(row: TaskRow, at: number): void {
    const last = row.progress_event_at;
    if (last === null || at - last >= 1000) this.emitProgress(row, at);
    else this.setTimerIfLater(row.task_id, "progress", last + 1000);
  }

  /** The progress timer came due: emits the task's latest progress if it is still running. */
  emitProgress(row: TaskRow, at: number): void {
    if (row.status !== "processing") return;
    this.sql.run("UPDATE tasks SET progress_event_at = ? WHERE task_id = ?", at, row.task_id);
    this.bulkStep?.rows.delete(row.task_id);
    this.emit(row, taskJson(row, this.namespaceId(), this.recordRetentionMs, { queue_position: null, waiting: null }), at, "task.progress");
  }

  // --- timers --------------------------------------------------------------------------------

  setTimer(taskId: string, kind: TimerKind, dueAt: number, tries = 0): void {
    this.sql.run(
      `INSERT INTO timers (task_id, kind, due_at, tries) VALUES (?, ?, ?, ?)
       ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at, tries = excluded.tries`,
      taskId, kind, dueAt, tries,
    );
  }

  /** Asks for an outbox flush soon, batching whatever else changes meanwhile. */
  scheduleFlush(at: number): void {
    this.askFlush(at + FLUSH_DELAY_MS);
  }

  /**
   * Sets a timer unless one of that kind is already due no later than `dueAt`. Most calls find
   * it so (the flush timer, asked for by every change): the WHERE leaves that row and its index
   * entry unwritten, so their pages stay out of the step's journal.
   */
  setTimerIfLater(taskId: string, kind: TimerKind, dueAt: number): void {
    this.sql.run(
      `INSERT INTO timers (task_id, kind, due_at) VALUES (?, ?, ?)
       ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at WHERE excluded.due_at < timers.due_at`,
      taskId, kind, dueAt,
    );
  }

  clearTimer(taskId: string, kind: TimerKind): void {
    this.sql.run("DELETE FROM timers WHERE task_id = ? AND kind = ?", taskId, kind);
  }

  clearTaskTimers(taskId: string): void {
    this.sql.run("DELETE FROM timers WHERE task_id = ?", taskId);
  }
}

import { type ErrorInfo, fail, ok, type Result } from "../errors";
import { builtinInputsSchema, hasBuiltinHandler } from "../tasks/builtin-types";
import { newOrderedId } from "../ids";
import type { NumberedLogLine, LogPayload } from "../db/types";
import { type CreateTaskInput, isTerminal, type Settings, type Stats, type Task } from "../tasks/model";
import { iso } from "../time";
import { NO_KEY } from "./fairness";
import { NamespacePart } from "./part";
import { IDEMPOTENCY_RETENTION_MS } from "./batch-keys";
import { batchTasks } from "./batch-view";
import { quotaExceeded } from "./limits";
import { checkSchedule, runAtOf } from "./schedule";
import { EMPTY_PROGRESS, type NewTaskRow, type TaskRow } from "./task-row";

/** Why an input cannot be created: the error of a refused create. */
type Refusal = { ok: false; error: ErrorInfo };


/**
 * The namespace's task operations: its settings, creating tasks (one, or many under keys),
 * cancelling them, and reading them. Each change runs in one transaction and then arms the alarm.
 */
export class TaskOps extends NamespacePart {
  private processorRow(taskType: string) {
    return this.core.processors.processorRow(taskType);
  }

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

  /** A new processing timeout applies to running attempts too, measured from their start. */
  private retimeProcessing(): void {
    const timeoutMs = this.settings.processing_timeout_seconds * 1000;
    for (const row of this.sql.all<TaskRow>("SELECT * FROM tasks WHERE status = 'processing'")) {
      const timeoutAt = (row.attempt_started_at ?? row.updated_at) + timeoutMs;
      this.store.touch(row, { timeout_at: timeoutAt }, row.updated_at);
      this.store.setTimer(row.task_id, "timeout", timeoutAt);
    }
  }

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
    const refused = this.refuseInput(input);
    if (refused) return refused;
    if (input.parent_task_id !== undefined && !(await this.findTask(input.parent_task_id)).ok) {
      return fail("validation_error", `parent task ${input.parent_task_id} not found`, { field: "parent_task_id" });
    }
    if (!this.unfinished.fits(1, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    // A bulk step of one, answered as a batch of one: its event, log line and snapshot go out in
    // the step's few statements, and its queue position and waiting come from the per-priority
    // and per-group totals, not from counts over the backlog (which grow with every waiting task).
    const task = this.ctx.storage.transactionSync(() =>
      this.store.bulk(() => {
        const admitted = this.insertAdmitting(input, origin, now);
        const taskId = admitted.taskId;
        if (idempotency) {
          this.sql.run(
            "INSERT OR REPLACE INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, ?, ?, ?)",
            idempotency.key, idempotency.requestHash, taskId, now,
          );
        }
        if (!admitted.queued) this.admit(now);
        return batchTasks(this.sql, this.store, [taskId], new Set([taskId]), now)[0];
      }),
    );
    await this.armAlarm();
    return task ? ok(task) : fail("internal_error", "task vanished after insert");
  }

  /** Whether a task of this type can run here: a built-in handler or a processor takes it. */
  runs(taskType: string): boolean {
    return hasBuiltinHandler(taskType) || this.processorRow(taskType) !== null;
  }

  /**
   * Why `input` cannot be created here, or null: a type with neither a processor nor a built-in
   * handler, or inputs its built-in handler refuses. `where` goes into the error's details (a batch item's index).
   */
  refuseInput(input: CreateTaskInput, where: Record<string, unknown> = {}): Refusal | null {
    return this.refuseWith(input, this.processorRow(input.task_type) !== null, where, this.clock.now());
  }

  /** refuseInput for each item of a batch, in order: the first refused, named by its index; each type is looked up once. */
  refuseInputs(inputs: CreateTaskInput[]): { index: number; refusal: Refusal } | null {
    const now = this.clock.now();
    const processed = new Map<string, boolean>();
    for (const [index, input] of inputs.entries()) {
      let hasProcessor = processed.get(input.task_type);
      if (hasProcessor === undefined) {
        hasProcessor = this.processorRow(input.task_type) !== null;
        processed.set(input.task_type, hasProcessor);
      }
      const refusal = this.refuseWith(input, hasProcessor, { index }, now);
      if (refusal) return { index, refusal };
    }
    return null;
  }

  private refuseWith(input: CreateTaskInput, hasProcessor: boolean, where: Record<string, unknown>, now: number): Refusal | null {
    if (!hasProcessor && !hasBuiltinHandler(input.task_type)) {
      return fail("validation_error", `no handler or processor for task_type "${input.task_type}"`, { ...where, field: "task_type" });
    }
    const schedule = checkSchedule(input, now, where);
    if (!schedule.ok) return schedule;
    const inputsSchema = hasProcessor ? null : builtinInputsSchema(input.task_type);
    if (inputsSchema) {
      const parsed = inputsSchema.safeParse(input.inputs ?? {});
      if (!parsed.success) return fail("validation_error", "invalid inputs", { ...where, issues: parsed.error.issues });
    }
    return null;
  }

  /** Stores one task (in the caller's transaction); the caller admits after. */
  insertTask(input: CreateTaskInput & { replay_of_task_id?: string }, origin: string, now: number): string {
    this.unfinished.added(1);
    const row = this.newRow(input, origin, now);
    this.store.insert(row);
    return row.task_id;
  }

  /**
   * insertTask, but a ready task that a slot waits for (NamespaceCore.admitsAtOnce) is admitted
   * as it is stored; `queued` says so, and the caller admits after only when it is false.
   */
  insertAdmitting(input: CreateTaskInput, origin: string, now: number): { taskId: string; queued: boolean } {
    this.unfinished.added(1);
    const row = this.newRow(input, origin, now);
    const ready = row.run_at === null || row.run_at <= now;
    if (!ready || !this.core.admitsAtOnce(row.concurrency_key)) {
      this.store.insert(row);
      return { taskId: row.task_id, queued: false };
    }
    this.core.queued(this.store.insert(row, now), now);
    return { taskId: row.task_id, queued: true };
  }

  private newRow(input: CreateTaskInput & { replay_of_task_id?: string }, origin: string, now: number): NewTaskRow & { concurrency_key: string; run_at: number | null } {
    return {
      // Time-ordered: each index keyed by task id (the row's own, the record marks', events by
      // task, D1's records) grows at its end instead of touching a random page with every insert.
      task_id: newOrderedId("tsk", now),
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
      concurrency_key: input.concurrency_key ?? NO_KEY,
      run_at: runAtOf(input, now),
      replay_of_task_id: input.replay_of_task_id ?? null,
    };
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
    for (const taskType of new Set(specs.map((s) => s.input.task_type))) {
      if (!this.runs(taskType)) return fail("validation_error", `no handler or processor for task_type "${taskType}"`);
    }
    // One lookup for every key; nothing runs between it and the transaction, so it still holds there.
    const seen = new Map(
      this.sql
        .all<{ key: string; task_id: string }>("SELECT key, task_id FROM idempotency WHERE key IN (SELECT value FROM json_each(?))", JSON.stringify(specs.map((s) => s.key)))
        .map((r) => [r.key, r.task_id]),
    );
    const fresh = specs.filter(({ key }) => !seen.has(key)).length;
    if (fresh > 0 && !this.unfinished.fits(fresh, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    const ids = this.ctx.storage.transactionSync(() =>
      this.store.bulk(() => {
        const made: [string, string][] = [];
        const ids = specs.map(({ key, input }) => {
          const known = seen.get(key);
          if (known !== undefined) return known;
          const taskId = this.insertTask(input, origin, now);
          seen.set(key, taskId);
          made.push([key, taskId]);
          return taskId;
        });
        if (made.length > 0) {
          this.sql.run(
            "INSERT INTO idempotency (key, request_hash, task_id, created_at) SELECT json_extract(value, '$[0]'), '', json_extract(value, '$[1]'), ? FROM json_each(?)",
            now, JSON.stringify(made),
          );
        }
        for (const event of events) this.store.storeEvent(event.type, null, event.data, now);
        this.admit(now);
        return ids;
      }),
    );
    await this.armAlarm();
    return ok(ids);
  }

  /**
   * Creates every one of `inputs` (checked by the caller, refuseInputs) in one transaction, or
   * none when they would pass max_unfinished_tasks, admits, and runs `within` in the same step
   * with their ids in the order given (a batch stores its key and reads its answer there). The
   * caller arms the alarm after.
   */
  createAll<T>(inputs: CreateTaskInput[], origin: string, within: (ids: string[], now: number) => T): Result<T> {
    if (!this.unfinished.fits(inputs.length, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    return ok(
      this.ctx.storage.transactionSync(() =>
        this.store.bulk(() => {
          // The fair queue's groups are written once each, before admission reads them. The step's
          // totals of created tasks (each new task's queue position) start from those groups: read first.
          this.store.createdByPriority();
          const ids = this.store.fair.joiningMany(() => inputs.map((input) => this.insertTask(input, origin, now)));
          this.admit(now);
          return within(ids, now);
        }),
      ),
    );
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
}

import { type DeadLetterFilter, deadLetterPage } from "../db/dead-letters";
import { fail, ok, type Result } from "../errors";
import { isTerminal, type Task } from "../tasks/model";
import { iso } from "../time";
import { type BulkCancelFilter, cancelStep } from "./bulk";
import type { BulkReplayResult } from "./contract";
import type { NamespaceCore } from "./core";
import { quotaExceeded } from "./limits";
import { NamespacePart } from "./part";
import type { Scheduler } from "./scheduler";
import { EMPTY_PROGRESS, type TaskRow } from "./task-row";
import type { TaskOps } from "./tasks";
import { yieldTurn } from "./turn";

/** Issue 14's aim for a step of a bulk call: other requests wait at most this long. */
export const STEP_AIM_MS = 50;

/** What a bulk cancel did; `steps` and the step lengths are for tests and the benchmark. */
export interface BulkCancelResult {
  cancelled: number;
  steps: number;
  longest_step_ms: number;
  p99_step_ms: number;
  /** Steps longer than STEP_AIM_MS. */
  slow_steps: number;
}

/** SPEC §5: a bulk replay makes at most this many tasks a call, this many an atomic step. */
const BULK_REPLAY_MAX = 10_000;
const BULK_REPLAY_PAGE = 1000;

/**
 * Issue 14's operations over many tasks (SPEC §5): bulk cancel in short steps, replay of
 * finished tasks one by one or by the dead-letter filter, and a seeded backlog for tests and
 * the benchmark. Fair admission itself lives in the store (store.fair) and NamespaceCore.admit.
 */
export class FairOps extends NamespacePart {
  constructor(
    core: NamespaceCore,
    private readonly tasks: TaskOps,
    private readonly scheduler: Scheduler,
  ) {
    super(core);
  }

  /**
   * Cancels every unfinished task matching `filter` that exists when the call begins, each an
   * ordinary cancel (event, webhooks, slot freed and given to the backlog), in steps of at most
   * CANCEL_STEP tasks with a yield between them, so other requests run while a big one goes on.
   *
   * Two passes over the tasks by seq: the waiting (`created`) ones first, then every status the
   * filter names. A slot freed by the cancel goes to the backlog at once; were the running tasks
   * cancelled first, each freed slot would admit a waiting task that the same call cancels a
   * moment later (two transitions, two events, a queue message for nothing, and a consumer
   * starting it). The second pass catches what moved meanwhile (a waiting task admitted by a
   * completion, a retry back to `created`); a task that finished meanwhile is not touched.
   *
   * Each step is one bulk step of the store (TaskStore.bulk): its events, log lines and record
   * snapshots are written in a few multi-row statements, and the outbox flush is asked once.
   *
   * `longest_step_ms` (for the benchmark) is the longest time from a step's start to the end of
   * its yield. The runtime's clock stands still while code runs and moves only when I/O or a
   * timer completes, so a step cannot be timed around its synchronous transaction alone (that
   * reads 0): the reading after the yield includes the step's transaction, its alarm arming and
   * whatever other calls ran in the yield (each of which waited at most that long). An upper bound.
   * Measured: bench/fair-dev.mjs (wrangler dev, the production-like heap) and bench/fair (in
   * vitest-pool-workers, whose heap is also Vitest's runner: there the few steps past 50 ms each
   * held a V8 major collection of 34–67 ms, whichever phase it fell in).
   */
  async bulkCancel(filter: BulkCancelFilter): Promise<BulkCancelResult> {
    const until = this.sql.count("SELECT COALESCE(MAX(seq), 0) AS n FROM tasks");
    const statuses = filter.status ?? ["created", "queued", "processing"];
    const passes: BulkCancelFilter[] = statuses.includes("created") && statuses.some((s) => s === "queued" || s === "processing") ? [{ ...filter, status: ["created"] }, filter] : [filter];
    let cancelled = 0;
    const stepMs: number[] = [];
    for (const [index, pass] of passes.entries()) {
      let after: number | null = 0;
      while (after !== null) {
        const from: number = after;
        const stepStart = performance.now();
        const now = this.clock.now();
        after = this.ctx.storage.transactionSync(() =>
          this.store.bulk(() => {
            const step = cancelStep(this.sql, pass, from, until);
            let freed = false;
            for (const row of step.rows) {
              freed ||= row.status !== "created";
              this.store.transition(row, "cancelled", { completed_at: now, timeout_at: null, lease_expires_at: null }, now, "cancelled by a bulk cancel");
              this.store.clearTaskTimers(row.task_id);
            }
            if (freed) this.admit(now);
            cancelled += step.rows.length;
            return step.next;
          }),
        );
        await this.armAlarm();
        // Let other requests in between steps.
        if (after !== null || index < passes.length - 1) await yieldTurn();
        stepMs.push(performance.now() - stepStart);
      }
    }
    stepMs.sort((a, b) => a - b);
    return {
      cancelled,
      steps: stepMs.length,
      longest_step_ms: stepMs.at(-1) ?? 0,
      p99_step_ms: stepMs[Math.min(stepMs.length - 1, Math.floor(stepMs.length * 0.99))] ?? 0,
      slow_steps: stepMs.filter((ms) => ms > STEP_AIM_MS).length,
    };
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
      if (!this.tasks.runs(source.task_type)) {
        return fail("validation_error", `no handler or processor for task_type "${source.task_type}"`, { task_id: source.task_id });
      }
    }
    if (!this.unfinished.fits(sources.length, this.settings.max_unfinished_tasks)) {
      return quotaExceeded("max_unfinished_tasks", this.settings.max_unfinished_tasks, "unfinished tasks");
    }
    const now = this.clock.now();
    const rows = this.ctx.storage.transactionSync(() => {
      const ids = sources.map((source) =>
        this.tasks.insertTask(
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
  async bulkReplay(filter: DeadLetterFilter, origin: string): Promise<Result<BulkReplayResult>> {
    const startedAt = iso(this.clock.now()) ?? "";
    await this.scheduler.flushNow();
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

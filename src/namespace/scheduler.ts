import { IDEMPOTENCY_RETENTION_MS } from "./batch-keys";
import type { Attempts } from "./attempts";
import { backoffMs, type NamespaceCore } from "./core";
import { NamespacePart } from "./part";
import type { Deliveries } from "./deliveries";
import { dueTimers } from "./due";
import type { TaskMessage } from "./messages";
import { flushOutbox } from "./outbox";
import { yieldTurn } from "./turn";
import type { StreamGate } from "./stream-gate";
import { NAMESPACE_TIMER, type TaskRow, type TimerRow } from "./task-row";

const SEND_BATCH = 100;

/** What a send timer's message needs of its task. */
type SendRow = Pick<TaskRow, "task_id" | "task_type" | "status" | "attempt" | "continuation">;
/** Timers one alarm turn takes at most; more due brings the alarm back at once. */
const ALARM_BATCH = 1000;
/** Lease, timeout and progress timers handled between two turns of the event loop. */
const TIMER_CHUNK = 50;
/** Scheduled tasks released (and admitted) in one transaction. */
const RELEASE_CHUNK = 100;
/** Outbox rounds one alarm turn writes at most (each with turns inside, see flushOutbox). */
const FLUSH_ROUNDS = 4;
/** Rows of each kind one alarm prunes at most, each kind in one statement. */
const PRUNE_CHUNK = 250;
/** How long the prune rests after a round that left nothing over (see prune). */
const PRUNE_PAUSE_MS = 10_000;
const EVENT_RETENTION_MS = 72 * 3600_000;
/** Longer than any attempt can run (the timeout is at most 24 h), so late reports still get 409. */
const ATTEMPT_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * The one alarm that multiplexes every timer: each due timer goes to its handler (queue sends,
 * leases and timeouts, progress events, outbox flushes), then webhook deliveries start, kept
 * rows are pruned, open streams' keys are checked, and the alarm is armed for what is next.
 */
export class Scheduler extends NamespacePart {
  /** The clock time before which the prune rests (in memory: a restarted object prunes at its first alarm). */
  private pruneAgainAt = 0;

  constructor(
    core: NamespaceCore,
    private readonly attempts: Attempts,
    private readonly deliveries: Deliveries,
    private readonly gate: StreamGate,
  ) {
    super(core);
  }

  private get watchdogMs(): number {
    return this.core.watchdogMs;
  }

  private get io(): NamespaceCore["io"] {
    return this.core.io;
  }

  private expire(timer: TimerRow, now: number): void {
    this.attempts.expire(timer, now);
  }

  private startDeliveries(now: number): Promise<number> {
    return this.deliveries.startDeliveries(now);
  }

  private recheckStreamKeys(now: number): Promise<void> {
    return this.gate.recheckStreamKeys(now);
  }

  /**
   * Runs every due timer, each on its own so that one failure never blocks the rest. The work
   * goes in bounded chunks with a turn of the event loop between them (see ./turn), so no
   * request waits behind the whole alarm: at most ALARM_BATCH timers and FLUSH_ROUNDS outbox
   * rounds a turn, and when more is left the alarm comes again at once.
   */
  async alarm(): Promise<void> {
    this.core.alarmFired();
    const now = this.clock.now();
    let more = await this.releaseScheduled(now);
    const due = dueTimers(this.sql, now, ALARM_BATCH);
    more ||= due.length === ALARM_BATCH;
    const sends = due.filter((timer) => timer.kind === "send");
    const flush = due.some((timer) => timer.kind === "flush");
    if (await this.runTimers(due.filter((timer) => timer.kind !== "send" && timer.kind !== "flush"), now)) await yieldTurn();
    if (await this.startDeliveries(now)) await yieldTurn();
    if (sends.length > 0) await this.sendMessages(sends);
    if (flush) more = (await this.flushTimer()) || more;
    await this.prune(now);
    await this.recheckStreamKeys(now);
    // Whatever is left is due now: the flush timer brings the alarm back at once.
    if (more) this.store.setTimerIfLater(NAMESPACE_TIMER, "flush", now);
    await this.armAlarm();
  }

  /**
   * Releases scheduled tasks that are due and admits, RELEASE_CHUNK a transaction and a turn;
   * true when more are due than one alarm takes.
   */
  private async releaseScheduled(now: number): Promise<boolean> {
    if (!this.store.fair.hasDueScheduled(now)) return false;
    for (let released = 0; released < ALARM_BATCH; released += RELEASE_CHUNK) {
      const count = this.ctx.storage.transactionSync(() => {
        const n = this.store.fair.releaseScheduled(now, RELEASE_CHUNK);
        if (n > 0) this.admit(now);
        return n;
      });
      if (count > 0) await yieldTurn();
      if (count < RELEASE_CHUNK) return false;
    }
    return true;
  }

  /**
   * Lease, timeout and progress timers, each in its own transaction, TIMER_CHUNK of them a turn;
   * returns how many were listed.
   * After a turn another request may have moved or removed a timer (a renewed lease, a claim),
   * so each is read again and handled only if it is still there and due.
   */
  private async runTimers(timers: TimerRow[], now: number): Promise<number> {
    for (let i = 0; i < timers.length; i += TIMER_CHUNK) {
      if (i > 0) await yieldTurn();
      for (const listed of timers.slice(i, i + TIMER_CHUNK)) {
        try {
          this.ctx.storage.transactionSync(() => {
            const timer = this.sql.one<TimerRow>(
              "SELECT * FROM timers WHERE task_id = ? AND kind = ? AND due_at <= ?",
              listed.task_id, listed.kind, now,
            );
            if (!timer) return;
            if (timer.kind === "progress") this.progressDue(timer, now);
            else this.expire(timer, now);
          });
        } catch (err) {
          console.error(`timer ${listed.kind} of ${listed.task_id} failed`, err);
          this.store.setTimer(listed.task_id, listed.kind, now + backoffMs(listed.tries), listed.tries + 1);
        }
      }
    }
    return timers.length;
  }

  private progressDue(timer: TimerRow, now: number): void {
    this.store.clearTimer(timer.task_id, "progress");
    const row = this.store.get(timer.task_id);
    if (row) this.store.emitProgress(row, now);
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
    // One read of what a message needs, for every timer: not each task's whole row.
    const rows = new Map(
      this.sql
        .all<SendRow>(
          "SELECT task_id, task_type, status, attempt, continuation FROM tasks WHERE task_id IN (SELECT value FROM json_each(?))",
          JSON.stringify(timers.map((t) => t.task_id)),
        )
        .map((r) => [r.task_id, r]),
    );
    for (const timer of timers) {
      const row = rows.get(timer.task_id);
      if (row?.status === "queued" && this.core.processors.processorRow(row.task_type)?.mode === "pull") {
        // Pulled tasks never go to the queue: due now (admitted, or a retry's delay over), a lease takes it.
        this.store.clearTimer(timer.task_id, "send");
        this.core.leaseWaiters.wakeAll();
      } else if (row?.status === "queued") {
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
          const watched = chunk.filter(({ body }) => body.slice === undefined).map(({ timer }) => [timer.task_id, timer.due_at]);
          if (watched.length > 0) {
            // One statement for the chunk, each timer found by its key (it was one a task, issue 11).
            this.sql.run(
              `UPDATE timers SET due_at = ?, tries = 0
                 FROM (SELECT value ->> 0 AS task_id, value ->> 1 AS due_at FROM json_each(?)) AS sent
                WHERE timers.task_id = sent.task_id AND timers.kind = 'send' AND timers.due_at = sent.due_at`,
              watchdogAt, JSON.stringify(watched),
            );
          }
          for (const { timer, body } of chunk) {
            if (body.slice !== undefined) this.sql.run("DELETE FROM timers WHERE task_id = ? AND kind = 'send' AND due_at = ?", timer.task_id, timer.due_at);
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
    // A round writes at most a batch of each kind (see outbox.ts), so go on until the outbox is
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
      recordRetentionMs: this.store.recordRetentionMs,
      d1Batch: (statements) => this.io.d1Batch(statements),
      transaction: (fn) => this.ctx.storage.transactionSync(fn),
    });
  }

  /**
   * The flush timer: writes up to FLUSH_ROUNDS rounds of the outbox (each bounded, see
   * flushOutbox); returns whether rows are left, for the alarm to come again at once. While the
   * rounds run the timer stays set, a backoff ahead, so that a restart midway (the object can go
   * between any two chunks) leaves it for a later alarm; on failure it is set later still.
   */
  private async flushTimer(): Promise<boolean> {
    const tries = this.sql.one<{ tries: number }>("SELECT tries FROM timers WHERE task_id = ? AND kind = 'flush'", NAMESPACE_TIMER)?.tries ?? 0;
    this.store.setTimer(NAMESPACE_TIMER, "flush", this.clock.now() + backoffMs(tries), tries + 1);
    try {
      for (let round = 0; round < FLUSH_ROUNDS; round++) {
        if (!(await this.flush())) {
          // The outbox is empty as flush() returns (nothing ran since): no flush is owed.
          this.store.clearTimer(NAMESPACE_TIMER, "flush");
          return false;
        }
        await yieldTurn();
      }
      this.store.setTimer(NAMESPACE_TIMER, "flush", this.clock.now());
      return true;
    } catch (err) {
      console.error(`outbox flush failed (try ${tries + 1}); retrying`, err);
      this.store.setTimer(NAMESPACE_TIMER, "flush", this.clock.now() + backoffMs(tries + 1), tries + 1);
      return false;
    }
  }

  /**
   * Drops what is kept only for a while: old events, settled attempts and deliveries,
   * idempotency keys; at most PRUNE_CHUNK rows of a kind, each kind a statement and, when it
   * deleted any, a turn.
   */
  private async prune(now: number): Promise<void> {
    // Rows age past their retention gradually: once a round found fewer than a chunk of each
    // kind, the next may wait PRUNE_PAUSE_MS (the alarm comes several times a second under load,
    // and five statements each time were a tenth of its reads). A full chunk prunes again at the
    // next alarm, so a backlog drains as fast as before.
    if (now < this.pruneAgainAt) return;
    let full = false;
    const prunes: (() => number)[] = [
      () => this.webhooks.prune(now, PRUNE_CHUNK),
      () => {
        // Events are numbered as they are stored, so the oldest are first by seq: the prune reads
        // the first events by seq (no index on created_at to write with every event) and only
        // when the very first is old enough. An event stored under a clock that went back waits
        // until those before it are old enough too.
        const cutoff = now - EVENT_RETENTION_MS;
        if (this.sql.count("SELECT COALESCE((SELECT created_at FROM events ORDER BY seq LIMIT 1) < ?, 0) AS n", cutoff) === 0) return 0;
        return this.sql.run(
          "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, created_at FROM events ORDER BY seq LIMIT ?) WHERE created_at < ?)",
          PRUNE_CHUNK, cutoff,
        );
      },
      () =>
        this.sql.run(
          `DELETE FROM attempts WHERE rowid IN
             (SELECT rowid FROM attempts WHERE started_at < ? AND final_status IS NOT NULL LIMIT ?)`,
          now - ATTEMPT_RETENTION_MS, PRUNE_CHUNK,
        ),
      () =>
        this.sql.run(
          "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE created_at < ? LIMIT ?)",
          now - IDEMPOTENCY_RETENTION_MS, PRUNE_CHUNK,
        ),
    ];
    for (const prune of prunes) {
      const pruned = prune();
      full ||= pruned >= PRUNE_CHUNK;
      if (pruned > 0) await yieldTurn();
    }
    this.pruneAgainAt = full ? 0 : now + PRUNE_PAUSE_MS;
  }
}

import { DeferredWrites } from "./deferred-writes";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/**
 * What one bulk step of the task store (TaskStore.bulk) keeps until it ends: the rows it
 * writes at the end (DeferredWrites), the earliest outbox flush asked for, the task counter
 * taken once, and created tasks by priority for the queue position of each task it inserts.
 */
export class BulkStep {
  readonly writes = new DeferredWrites();
  /**
   * The rows as the step left them, of the tasks it inserted or changed through the store (a
   * batch's answer reads them here, not back from SQLite); cleared when an item rolls back.
   */
  readonly rows = new Map<string, TaskRow>();
  /**
   * The events the step stored, told to the object (TaskStore's onEvent) at its end, after its
   * rows are written: what they set in memory (the count of unfinished tasks, waiters woken) then
   * never outlives an item that rolled back.
   */
  readonly stored: [eventId: string, eventType: string, at: number][] = [];
  /** The earliest outbox flush a change asked for. */
  flushAt: number | null = null;
  /** The last task seq taken from the counter (0 before the first insert); stored at the end. */
  lastSeq = 0;
  /** The seq the counter row already holds (its first insert takes it there): no rewrite needed up to it. */
  storedSeq = 0;
  /** The seq of the task inserted last: the newest created task. */
  private newestSeq = 0;
  /** Created tasks by priority, read at the first position needed and kept in step after. */
  private created: Map<number, number> | null = null;

  constructor(private readonly sql: Sql) {}

  askFlush(dueAt: number): void {
    this.flushAt = Math.min(this.flushAt ?? dueAt, dueAt);
  }

  /** A task was inserted (after the fair queue took it). */
  inserted(seq: number, priority: number, created: boolean): void {
    this.lastSeq = seq;
    if (!created) return;
    this.newestSeq = seq;
    this.created?.set(priority, (this.created.get(priority) ?? 0) + 1);
  }

  /** A created task of `priority` left `created`. */
  leftCreated(priority: number): void {
    this.created?.set(priority, (this.created.get(priority) ?? 1) - 1);
  }

  /**
   * The queue position of the newest created task, a sum of the totals (it is behind every
   * created task of its priority or higher); null for any other task.
   */
  positionOfNewest(row: { seq: number; priority: number }): number | null {
    if (row.seq !== this.newestSeq) return null;
    let position = 0;
    for (const [priority, n] of this.createdTotals()) if (priority >= row.priority) position += n;
    return position;
  }

  /** Created tasks by priority as they stand now: read once, then kept in step by inserts and transitions. */
  createdTotals(): ReadonlyMap<number, number> {
    this.created ??= createdByPriority(this.sql);
    return this.created;
  }

  /** Writes what the step deferred; `flush` sets the outbox flush it asked for. */
  end(flush: (dueAt: number) => void): void {
    this.writes.write(this.sql);
    if (this.lastSeq > this.storedSeq) this.sql.run("UPDATE meta SET value = CAST(? AS INTEGER) WHERE key = 'task_seq'", this.lastSeq);
    if (this.flushAt !== null) flush(this.flushAt);
  }
}

/**
 * The next task seq. A counter that only goes up: finished tasks leave the tasks table, so
 * MAX(seq) would reuse numbers that records in D1 already carry, and lists order and page by
 * seq. A bulk step takes the counter once and stores where it got to when it ends.
 */
export function takeSeq(sql: Sql, step: BulkStep | null): number {
  if (step && step.lastSeq > 0) return ++step.lastSeq;
  const seq = sql.count(
    `INSERT INTO meta (key, value) VALUES ('task_seq', (SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks))
     ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
     RETURNING CAST(value AS INTEGER) AS n`,
  );
  if (step && step.storedSeq === 0) step.storedSeq = seq;
  return seq;
}

/** Created tasks by priority, exact: ready ones from the fair queue's groups, scheduled ones counted (one statement). */
export function createdByPriority(sql: Sql): Map<number, number> {
  const counts = new Map<number, number>();
  const rows = sql.all<{ priority: number; n: number }>(
    `SELECT priority, SUM(waiting) AS n FROM fair_queue GROUP BY priority
     UNION ALL
     SELECT priority, COUNT(*) AS n FROM tasks INDEXED BY tasks_scheduled WHERE status = 'created' AND scheduled = 1 GROUP BY priority`,
  );
  for (const { priority, n } of rows) counts.set(priority, (counts.get(priority) ?? 0) + Number(n));
  return counts;
}

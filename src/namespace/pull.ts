import type { KnownTask } from "./attempt-rows";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/**
 * The queued tasks of `taskType` a worker may lease now, highest priority then oldest first,
 * whole (a lease claims each at once, in the same step), and whether each has a send timer.
 * A task whose send timer lies in the future is waiting out its retry delay (SPEC §5): it
 * becomes leasable when that timer comes due, as a pushed task would be sent then.
 */
export function leasable(sql: Sql, taskType: string, now: number, limit: number): KnownTask[] {
  return sql
    .all<TaskRow & { send_due_at: number | null }>(
      `SELECT tasks.*, timers.due_at AS send_due_at FROM tasks
         LEFT JOIN timers ON timers.task_id = tasks.task_id AND timers.kind = 'send'
        WHERE tasks.task_type = ? AND tasks.status = 'queued' AND (timers.due_at IS NULL OR timers.due_at <= ?)
        ORDER BY tasks.priority DESC, tasks.seq ASC LIMIT ?`,
      taskType, now, limit,
    )
    .map(({ send_due_at: sendDueAt, ...row }) => ({ row, sendTimer: sendDueAt !== null }));
}

/**
 * The queued tasks of `taskType` that have no send timer: pulled tasks, which never went to the
 * queue. When their type stops being pulled (its processor deleted or made push), each needs
 * a send timer again, or it would hold its slot forever.
 */
export function queuedWithoutSend(sql: Sql, taskType: string): string[] {
  return sql
    .all<{ task_id: string }>(
      `SELECT task_id FROM tasks WHERE task_type = ? AND status = 'queued'
         AND NOT EXISTS (SELECT 1 FROM timers WHERE timers.task_id = tasks.task_id AND timers.kind = 'send')`,
      taskType,
    )
    .map((r) => r.task_id);
}

/**
 * Lease calls that wait for work (`wait_seconds`). Any change that may have made a task
 * leasable wakes them all, after the change has committed; each one then tries again and
 * waits on if it still finds nothing. They count toward `max_open_streams` like long-polls.
 */
export class LeaseWaiters {
  private readonly waiting = new Set<() => void>();
  private wakeScheduled = false;

  get size(): number {
    return this.waiting.size;
  }

  /** Resolves when woken or after `ms`, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiting.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      this.waiting.add(wake);
    });
  }

  /** Wakes every waiting lease once the current change has committed. */
  wakeAll(): void {
    if (this.wakeScheduled || this.waiting.size === 0) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      for (const wake of [...this.waiting]) wake();
    });
  }
}

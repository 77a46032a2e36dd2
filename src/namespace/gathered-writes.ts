import type { Sql } from "./sql";

/** An attempt a claim opened: its row in attempts, and its lease and timeout timers. */
export interface OpenedAttempt {
  taskId: string;
  attempt: number;
  tokenHash: string;
  leaseSeconds: number;
  startedAt: number;
  leaseExpiresAt: number;
  timeoutAt: number;
}

/** How much a batch had gathered before an item (GatheredWrites.mark). */
export interface GatheredMark {
  opened: number;
  ended: number;
  unsent: number;
}

/**
 * The writes a batch of claims or reports leaves to its end (Attempts.gathering): the attempts
 * its claims open (their rows, lease and timeout timers: a statement for the rows and one for
 * the timers, not two a claim), the removal of the send timers of the tasks claimed, and
 * of all the timers of the tasks that end (a statement each, not one a task). Nothing in the
 * batch reads them before: a continuation's claim changes an attempt opened in an earlier call,
 * a claimed task is no longer queued (the claim-ahead and the alarm's sends take only queued
 * ones), and a task that has ended or been claimed gets no send timer again in the same batch.
 */
export class GatheredWrites {
  readonly opened: OpenedAttempt[] = [];
  /** Tasks that ended: their timers go. */
  readonly ended: string[] = [];
  /** Tasks claimed, or refused after their message came: their send timers go. */
  readonly unsent: string[] = [];

  mark(): GatheredMark {
    return { opened: this.opened.length, ended: this.ended.length, unsent: this.unsent.length };
  }

  /** Takes back what was gathered after `mark`. */
  forgetSince(mark: GatheredMark): void {
    this.opened.length = mark.opened;
    this.ended.length = mark.ended;
    this.unsent.length = mark.unsent;
  }

  write(sql: Sql): void {
    writeOpened(sql, this.opened);
    if (this.unsent.length > 0) sql.run("DELETE FROM timers WHERE kind = 'send' AND task_id IN (SELECT value FROM json_each(?))", JSON.stringify(this.unsent));
    if (this.ended.length > 0) sql.run("DELETE FROM timers WHERE task_id IN (SELECT value FROM json_each(?))", JSON.stringify(this.ended));
  }
}

/**
 * The attempt rows and the lease and timeout timers of claims just made: two statements
 * however many claims, each reading the claims from one JSON array.
 */
export function writeOpened(sql: Sql, opened: OpenedAttempt[]): void {
  if (opened.length === 0) return;
  const rows = JSON.stringify(opened.map((o) => [o.taskId, o.attempt, o.tokenHash, o.leaseSeconds, o.startedAt, o.leaseExpiresAt, o.timeoutAt]));
  sql.run(
    `INSERT INTO attempts (task_id, attempt, token_hash, lease_seconds, started_at)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?)`,
    rows,
  );
  // WHERE true: without it SQLite would read the upsert's ON as a join's.
  sql.run(
    `INSERT INTO timers (task_id, kind, due_at, tries)
     SELECT value ->> 0, 'lease', value ->> 5, 0 FROM json_each(?)
     UNION ALL SELECT value ->> 0, 'timeout', value ->> 6, 0 FROM json_each(?) WHERE true
     ON CONFLICT (task_id, kind) DO UPDATE SET due_at = excluded.due_at, tries = excluded.tries`,
    rows, rows,
  );
}

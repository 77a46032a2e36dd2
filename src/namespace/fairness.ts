import type { TaskStatus } from "../tasks/model";
import { gatherFor } from "./gather";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";

/**
 * The key of tasks created without a `concurrency_key`: they wait as one group in the
 * round-robin and no per-key limit applies to them. A real key has at least one character.
 */
export const NO_KEY = "";

/** How long a completion counts toward the moving completion rate. */
const RATE_WINDOW_MS = 5 * 60_000;
/** The rate looks at most at this many recent completions. */
const RATE_SAMPLES = 256;

/** A (key, priority) group of ready tasks, with its key's tasks holding slots. */
export type Group = {
  key: string;
  priority: number;
  waiting: number;
  turn: number;
  active: number;
};

/** The next ready task's group: its key and priority. */
export interface Turn {
  key: string;
  priority: number;
}

/**
 * Fair admission state over the Durable Object's SQLite (SPEC §5 "Fairness inside a namespace").
 *
 * `fair_keys` counts each key's tasks that hold a slot; `fair_queue` has one row per
 * (key, priority) with ready (created, not scheduled) tasks: how many wait, the round-robin
 * `turn` (a number from one counter, renewed each time the group is served, so the least
 * recently served group comes first) and `blocked` (the key is at `max_concurrent_per_key`).
 * Picking the next group is one probe of the index (blocked, priority DESC, turn); every change
 * touches one row, or the ≤ 10 rows of one key when it blocks or unblocks. No waiting task is
 * ever scanned, so admission costs O(log n) a task at any backlog.
 */
export class FairQueue {
  /** Bumped by every change, so that a snapshot of the groups is reused while it holds. */
  private changes = 0;
  private snapshot: { changes: number; groups: Group[] } | null = null;
  /** The group an admitRun is taking tasks from, and how many it has admitted so far. */
  private run: { key: string; priority: number; admitted: number } | null = null;
  /** Recent completion times (clock ms), oldest first: the moving completion rate. */
  private readonly completions: number[] = [];
  /** While set (joiningMany): ready tasks joining, counted by group (priority, then key). */
  private joining: Map<string, { key: string; priority: number; count: number }> | null = null;
  /** While set (releasingMany): the keys of the slots given back, one entry a slot, written at its end. */
  private released: string[] | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly perKeyLimit: () => number | null,
  ) {}

  // --- the task store's side: transitions, scheduled starts, the next ready task -------------

  /** Keeps the queue in step with a task's transition: a ready task leaving, a slot taken or freed. */
  onTransition(row: TaskRow, to: TaskStatus, at: number): void {
    const run = this.run;
    if (run && to === "queued" && row.status === "created" && row.scheduled === 0 && row.concurrency_key === run.key && row.priority === run.priority) {
      // Admitted in a run (admitRun): the group and the key are updated once, at its end.
      run.admitted++;
      return;
    }
    if (row.status === "created" && row.scheduled === 0) this.dequeue(row.concurrency_key, row.priority, to === "queued");
    const holds = (s: TaskStatus): boolean => s === "queued" || s === "processing";
    if (holds(row.status) !== holds(to)) this.slots(row.concurrency_key, holds(to) ? 1 : -1);
    if (holds(row.status) && (to === "completed" || to === "failed")) this.completed(at);
  }

  /** Whether a scheduled task's run_at has come (one read, no transaction: most alarms have none). */
  hasDueScheduled(now: number): boolean {
    return this.dueScheduled(now, 1).length > 0;
  }

  /**
   * Releases up to `limit` scheduled tasks whose run_at has come to the fair queue, oldest
   * run_at first; returns how many. The caller admits after.
   */
  releaseScheduled(now: number, limit: number): number {
    const due = this.dueScheduled(now, limit);
    for (const task of due) {
      this.sql.run("UPDATE tasks SET scheduled = 0 WHERE task_id = ?", task.task_id);
      this.enqueue(task.concurrency_key, task.priority);
    }
    return due.length;
  }

  private dueScheduled(now: number, limit: number): { task_id: string; concurrency_key: string; priority: number }[] {
    return this.sql.all<{ task_id: string; concurrency_key: string; priority: number }>(
      `SELECT task_id, concurrency_key, priority FROM tasks INDEXED BY tasks_scheduled WHERE status = 'created' AND scheduled = 1 AND run_at <= ?
       ORDER BY run_at, seq LIMIT ?`,
      now, limit,
    );
  }

  /**
   * Admits up to `limit` ready tasks, one group's turn after another: each admission takes the
   * oldest task of the group whose turn it is, which then goes to the back of its round. While
   * that group has no rival (no other unblocked group of its priority) and no per-key limit can
   * block it mid-way, admission after admission would take that same group's next task: its
   * next tasks are read at once, and the group and its key are updated once for all of them.
   * `admit` makes each one queued (a transition, which comes back here through onTransition).
   * Returns how many were admitted.
   */
  admitRun(limit: number, admit: (row: TaskRow) => void): number {
    let admitted = 0;
    while (admitted < limit) {
      // The group whose turn it is, and the one after it: a rival if it has the same priority.
      const [turn, after] = this.sql.all<{ key: string; priority: number; waiting: number }>(
        "SELECT key, priority, waiting FROM fair_queue WHERE blocked = 0 ORDER BY priority DESC, turn LIMIT 2",
      );
      if (!turn) break;
      const alone = after?.priority !== turn.priority && (turn.key === NO_KEY || this.perKeyLimit() === null);
      const rows = this.sql.all<TaskRow>(
        "SELECT * FROM tasks INDEXED BY tasks_fair WHERE status = 'created' AND scheduled = 0 AND concurrency_key = ? AND priority = ? ORDER BY seq LIMIT ?",
        turn.key, turn.priority, alone ? Math.max(1, Math.min(limit - admitted, turn.waiting)) : 1,
      );
      if (rows.length === 0) {
        console.error(`fair queue group (${turn.key}, ${turn.priority}) had no ready task; dropped`);
        this.drop(turn);
        continue;
      }
      this.run = { key: turn.key, priority: turn.priority, admitted: 0 };
      try {
        for (const row of rows) admit(row);
      } finally {
        const run = this.run;
        this.run = null;
        if (run.admitted > 0) {
          // A group that gave every task it had leaves in one statement (dequeue would count it down first).
          if (run.admitted >= turn.waiting) this.drop(turn);
          else this.dequeue(run.key, run.priority, true, run.admitted);
          this.slots(run.key, run.admitted);
        }
        admitted += run.admitted;
      }
      // The only group took every task it had: none is left to ask for (admitting never unblocks one).
      if (after === undefined && rows.length >= turn.waiting) break;
    }
    return admitted;
  }

  // --- the queue itself ------------------------------------------------------------------------

  /** The group admission serves next, or null when no ready task may start. */
  next(): Turn | null {
    return this.sql.one<{ key: string; priority: number }>(
      "SELECT key, priority FROM fair_queue WHERE blocked = 0 ORDER BY priority DESC, turn LIMIT 1",
    );
  }

  /**
   * Runs `fn`, which stores many ready tasks at once (a batch create, all of it or nothing),
   * with their joining counted by group and written at its end: one write a group instead of
   * one a task. New groups go to the back of the round in the order their first task came, as
   * one by one. Nothing in `fn` may read the queue (a bulk step's totals of created tasks are
   * read before it); admission comes after.
   */
  joiningMany<T>(fn: () => T): T {
    if (this.joining) return fn();
    return gatherFor(new Map<string, { key: string; priority: number; count: number }>(), (j) => (this.joining = j), fn, (joined) => {
      for (const { key, priority, count } of joined.values()) this.enqueue(key, priority, count);
    });
  }

  /** `count` ready tasks join their group; a new group goes to the back of the round. */
  enqueue(key: string, priority: number, count = 1): void {
    this.changes++;
    if (this.joining) {
      const group = `${priority} ${key}`;
      const joined = this.joining.get(group);
      if (joined) joined.count += count;
      else this.joining.set(group, { key, priority, count });
      return;
    }
    // Most tasks join a group that already waits: one write, no turn or block to work out.
    if (this.sql.run("UPDATE fair_queue SET waiting = waiting + ? WHERE key = ? AND priority = ?", count, key, priority) > 0) return;
    this.sql.run(
      `INSERT INTO fair_queue (key, priority, waiting, turn, blocked) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key, priority) DO UPDATE SET waiting = waiting + excluded.waiting`,
      key, priority, count, this.nextTurn(), this.isBlocked(key) ? 1 : 0,
    );
  }

  /** `count` ready tasks left their group (admitted or cancelled); `served` renews the group's turn. */
  dequeue(key: string, priority: number, served: boolean, count = 1): void {
    this.changes++;
    const left = this.sql.one<{ waiting: number }>(
      "UPDATE fair_queue SET waiting = waiting - ? WHERE key = ? AND priority = ? RETURNING waiting",
      count, key, priority,
    );
    if (left && left.waiting <= 0) this.sql.run("DELETE FROM fair_queue WHERE key = ? AND priority = ?", key, priority);
    else if (left && served) this.sql.run("UPDATE fair_queue SET turn = ? WHERE key = ? AND priority = ?", this.nextTurn(), key, priority);
  }

  /** Removes a group outright: one that gave every task it had, or one whose count went wrong (a guard). */
  drop(turn: Turn): void {
    this.changes++;
    this.sql.run("DELETE FROM fair_queue WHERE key = ? AND priority = ?", turn.key, turn.priority);
  }

  /**
   * Runs `fn`, a batch of reports with admission held to after it, with the slots its tasks give
   * back gathered and written at its end, once a key instead of once a task. Until then each key
   * counts them as still held, which can only keep it blocked, never let it pass its limit; and
   * admission, the one reader that matters, comes after. An item whose savepoint rolls back
   * takes back its releases (releasedMark, forgetReleasesSince).
   */
  releasingMany<T>(fn: () => T): T {
    if (this.released) return fn();
    return gatherFor<string[], T>([], (r) => (this.released = r), fn, (released) => {
      const byKey = new Map<string, number>();
      for (const key of released) byKey.set(key, (byKey.get(key) ?? 0) + 1);
      for (const [key, n] of byKey) this.slots(key, -n);
    });
  }

  /** How many slot releases the running batch has gathered: an item's mark for forgetReleasesSince. */
  releasedMark(): number {
    return this.released?.length ?? 0;
  }

  /** Takes back the releases gathered after `mark`: its item's savepoint rolled back. */
  forgetReleasesSince(mark: number): void {
    if (this.released) this.released.length = mark;
  }

  /**
   * Tasks of `key` took slots (delta > 0) or gave them back; the key blocks at its limit.
   * Keyless tasks never block and nothing reads their count (the namespace's total is counted
   * from the tasks): their slots are not kept, two statements fewer a keyless task.
   */
  slots(key: string, delta: number): void {
    if (key === NO_KEY) return;
    this.changes++;
    if (delta < 0 && this.released) {
      for (let i = 0; i < -delta; i++) this.released.push(key);
      return;
    }
    const active = this.sql.one<{ active: number }>(
      `INSERT INTO fair_keys (key, active) VALUES (?, MAX(?, 0))
       ON CONFLICT (key) DO UPDATE SET active = MAX(fair_keys.active + ?, 0) RETURNING active`,
      key, delta, delta,
    )?.active ?? 0;
    if (active === 0) this.sql.run("DELETE FROM fair_keys WHERE key = ?", key);
    // Keys without a per-key limit never block: their groups stay unblocked.
    if (this.perKeyLimit() === null) return;
    const blocked = this.blockedAt(key, active) ? 1 : 0;
    this.sql.run("UPDATE fair_queue SET blocked = ? WHERE key = ? AND blocked != ?", blocked, key, blocked);
  }

  /** The limit changed: every key's groups are blocked or unblocked again (O(keys), on configure). */
  reblock(): void {
    this.changes++;
    const limit = this.perKeyLimit();
    this.sql.run(
      `UPDATE fair_queue SET blocked = CASE WHEN ? IS NOT NULL AND key != '' AND
         COALESCE((SELECT active FROM fair_keys WHERE fair_keys.key = fair_queue.key), 0) >= ? THEN 1 ELSE 0 END`,
      limit, limit,
    );
  }

  /** Every waiting group with its key's slots, as of now (cached until the next change). */
  groups(): Group[] {
    if (this.snapshot?.changes !== this.changes) {
      const groups = this.sql.all<Group>(
        `SELECT q.key AS key, q.priority AS priority, q.waiting AS waiting, q.turn AS turn, COALESCE(f.active, 0) AS active
         FROM fair_queue q LEFT JOIN fair_keys f ON f.key = q.key ORDER BY q.priority DESC, q.turn`,
      );
      this.snapshot = { changes: this.changes, groups };
    }
    return this.snapshot.groups;
  }

  limit(): number | null {
    return this.perKeyLimit();
  }

  activeOf(key: string): number {
    return this.sql.one<{ active: number }>("SELECT active FROM fair_keys WHERE key = ?", key)?.active ?? 0;
  }

  /** Whether `key` is at max_concurrent_per_key: its ready tasks wait. */
  isBlocked(key: string): boolean {
    if (key === NO_KEY || this.perKeyLimit() === null) return false;
    return this.blockedAt(key, this.activeOf(key));
  }

  private blockedAt(key: string, active: number): boolean {
    const limit = this.perKeyLimit();
    return key !== NO_KEY && limit !== null && active >= limit;
  }

  private nextTurn(): number {
    return this.sql.count(
      `INSERT INTO meta (key, value) VALUES ('fair_turn', 1)
       ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
       RETURNING CAST(value AS INTEGER) AS n`,
    );
  }

  // --- the completion rate -------------------------------------------------------------------

  /** A task gave its slot back by finishing: one sample of the completion rate. */
  completed(at: number): void {
    this.completions.push(at);
    if (this.completions.length > RATE_SAMPLES) this.completions.shift();
  }

  /**
   * Completions a second over the recent window; null until completions came at two instants.
   *
   * Completions arrive in bursts: a consumer batch reports its attempts in one call, and the
   * clock stands still within a call, so up to a batch's worth share one instant. The ones at
   * the window's first instant only open the span (counting them too would overstate the rate by
   * a burst over the span); and a stall is judged against the gap between instants, not between
   * completions (a burst of b would make every ordinary pause look like a stall of b gaps).
   */
  rate(now: number): number | null {
    while (this.completions.length > 0 && (this.completions[0] ?? now) < now - RATE_WINDOW_MS) this.completions.shift();
    const first = this.completions[0];
    const last = this.completions[this.completions.length - 1];
    if (first === undefined || last === undefined || last === first) return null;
    let afterFirst = 0;
    let instants = 1;
    let previous = first;
    for (const at of this.completions) {
      if (at === first) continue;
      afterFirst++;
      if (at !== previous) instants++;
      previous = at;
    }
    // While completions keep coming the span ends at the last one; once they stall, the
    // silence since then counts too, so the rate decays instead of promising a start.
    const gap = (last - first) / (instants - 1);
    const spanMs = Math.max(now - last > 2 * gap ? now - first : last - first, 1);
    return afterFirst / (spanMs / 1000);
  }
}

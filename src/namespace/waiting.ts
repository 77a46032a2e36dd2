import type { Waiting } from "../tasks/model";
import { type FairQueue, type Group, NO_KEY } from "./fairness";
import type { Sql } from "./sql";

/** What of a created task the waiting view needs. */
export interface WaitingRow {
  task_id: string;
  seq: number;
  priority: number;
  concurrency_key: string;
  run_at: number | null;
  scheduled: number;
}

/**
 * Why a created task waits (SPEC §5 "Why a task waits"), computed live from the queue:
 *
 * - `scheduled`: its `run_at` is ahead; position among scheduled tasks by `run_at`.
 * - `concurrency_key`: its key has fewer free slots under `max_concurrent_per_key` than tasks
 *   of the key ahead of it; position among the key's tasks that wait for a slot of the key.
 * - `concurrency_limit`: otherwise; position in the order admission will take the ready tasks
 *   as they stand: higher priorities first, then round-robin across the keys of its priority
 *   (a key with room for fewer tasks than it has waiting takes only that many).
 *
 * `eta_seconds` divides the position by the namespace's moving completion rate (for a key, by
 * its share of the slots); null while there is no rate yet. `rate_limited` is never produced:
 * admission itself is not rate limited (the request bucket refuses creates instead).
 */
export function waitingOf(sql: Sql, fair: FairQueue, row: WaitingRow, now: number, known?: KnownCounts): Waiting {
  const rate = fair.rate(now);
  if (row.scheduled === 1 && row.run_at !== null) {
    const position =
      sql.count(
        `SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_scheduled WHERE status = 'created' AND scheduled = 1
           AND (run_at < ? OR (run_at = ? AND seq < ?))`,
        row.run_at, row.run_at, row.seq,
      ) + 1;
    return { reason: "scheduled", position, eta_seconds: Math.max(0, Math.ceil((row.run_at - now) / 1000)) };
  }
  const rankInGroup =
    known?.rankInGroup ??
    sql.count(
      "SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_fair WHERE status = 'created' AND scheduled = 0 AND concurrency_key = ? AND priority = ? AND seq < ?",
      row.concurrency_key, row.priority, row.seq,
    );
  const limit = fair.limit();
  const groups = fair.groups();
  const activeTotal = known?.activeTotal ?? sql.count("SELECT COUNT(*) AS n FROM tasks WHERE status IN ('queued', 'processing')");
  if (row.concurrency_key !== NO_KEY && limit !== null) {
    const higher = known
      ? groups.reduce((n, g) => (g.key === row.concurrency_key && g.priority > row.priority ? n + g.waiting : n), 0)
      : sql.count(
          "SELECT COUNT(*) AS n FROM tasks INDEXED BY tasks_fair WHERE status = 'created' AND scheduled = 0 AND concurrency_key = ? AND priority > ?",
          row.concurrency_key, row.priority,
        );
    const ahead = rankInGroup + higher;
    const active = fair.activeOf(row.concurrency_key);
    const room = Math.max(limit - active, 0);
    if (ahead >= room) {
      const position = ahead - room + 1;
      // The key's slots free at its share of the namespace's completions.
      const keyRate = rate === null ? null : (rate * Math.max(active, 1)) / Math.max(activeTotal, 1);
      return { reason: "concurrency_key", position, eta_seconds: eta(position, keyRate) };
    }
  }
  const position = roundRobinPosition(groups, row, rankInGroup + 1, limit);
  return { reason: "concurrency_limit", position, eta_seconds: eta(position, rate) };
}

/**
 * Counts a caller worked out for many tasks at once (a batch's answer, from the fair queue's
 * group totals) instead of counting the backlog for each: the ready tasks of the row's group
 * older than it, and the tasks holding slots. With them, a key's tasks at higher priorities
 * are read from the same group totals.
 */
export interface KnownCounts {
  rankInGroup: number;
  activeTotal: number;
}

/** 1-based place in the backlog: higher priority first, then older first (SPEC's queue_position). */
export function queuePosition(sql: Sql, row: Pick<WaitingRow, "priority" | "seq">): number {
  return (
    sql.count(
      `SELECT COUNT(*) AS n FROM tasks WHERE status = 'created'
         AND (priority > ? OR (priority = ? AND seq < ?))`,
      row.priority, row.priority, row.seq,
    ) + 1
  );
}

const eta = (position: number, rate: number | null): number | null =>
  rate === null || rate <= 0 ? null : Math.round(position / rate);

/**
 * The 1-based place of the task that is `rank`th in its group, in the order admission takes
 * ready tasks: all that higher priorities can still admit, then at its priority the rounds
 * before its own (each group gives one task a round, while it has tasks and room), then the
 * groups ahead of its group in the current round.
 */
export function roundRobinPosition(groups: readonly Group[], row: Pick<WaitingRow, "concurrency_key" | "priority">, rank: number, limit: number | null): number {
  const room = new Map<string, number>();
  const roomOf = (g: Group): number => {
    if (g.key === NO_KEY || limit === null) return Number.POSITIVE_INFINITY;
    return room.get(g.key) ?? Math.max(limit - g.active, 0);
  };
  let before = 0;
  let ownTurn: number | null = null;
  for (const g of groups) if (g.key === row.concurrency_key && g.priority === row.priority) ownTurn = g.turn;
  // Groups come highest priority first: a key's room is spent by its higher priorities first.
  for (const g of groups) {
    if (g.priority < row.priority) break;
    const takes = Math.min(g.waiting, roomOf(g));
    if (g.priority > row.priority) {
      before += takes;
    } else if (g.key !== row.concurrency_key) {
      before += Math.min(takes, rank - 1);
      if (ownTurn !== null && g.turn < ownTurn && takes >= rank) before += 1;
    }
    if (g.key !== NO_KEY && limit !== null) room.set(g.key, roomOf(g) - takes);
  }
  // Its own group's tasks ahead of it (rank − 1) go first, then itself.
  return before + rank;
}

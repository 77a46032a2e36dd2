import type { Task, Waiting } from "../tasks/model";
import { tasksById } from "./attempt-rows";
import type { Sql } from "./sql";
import type { TaskStore } from "./store";
import type { TaskRow } from "./task-row";
import { waitingOf } from "./waiting";

/**
 * The tasks of a batch as they stand at the end of the step that created them, in the order
 * of `ids`; null for a task no longer held here (it finished and left for D1). The tasks made
 * in that step (`made`) are the namespace's newest, so the queue position of each one still
 * created, and its rank in its fair-queue group, follow from the totals by priority and by
 * group less the batch's own newer tasks: no count over the backlog per task. Call it in the
 * creating step, before anything else can create a task.
 */
export function batchTasks(sql: Sql, store: TaskStore, ids: string[], made: ReadonlySet<string>, now: number): (Task | null)[] {
  // The step's own rows as it left them; only tasks it did not touch (a repeat's) are read.
  const rows = new Map<string, TaskRow>();
  const unread: string[] = [];
  for (const id of ids) {
    const row = store.stepRow(id);
    if (row) rows.set(id, row);
    else unread.push(id);
  }
  if (unread.length > 0) {
    for (const [id, row] of tasksById(sql, unread)) rows.set(id, row);
  }
  const views = new Map<string, { queue_position: number; waiting: Waiting }>();
  const waiting = [...made]
    .map((id) => rows.get(id))
    .filter((row): row is TaskRow => row?.status === "created")
    .sort((a, b) => b.seq - a.seq);
  if (waiting.length > 0) {
    const byPriority = store.createdByPriority();
    const groupSizes = new Map(store.fair.groups().map((g) => [groupOf(g), g.waiting]));
    const activeTotal = store.activeCount();
    // Newest first: how many of the batch's created tasks are newer, by priority and by group.
    const newerAt = new Map<number, number>();
    const newerIn = new Map<string, number>();
    for (const row of waiting) {
      let position = 0;
      for (const [priority, n] of byPriority) if (priority > row.priority) position += n;
      const newer = newerAt.get(row.priority) ?? 0;
      position += (byPriority.get(row.priority) ?? 0) - newer;
      newerAt.set(row.priority, newer + 1);
      let view: Waiting;
      if (row.scheduled === 1) {
        view = waitingOf(sql, store.fair, row, now);
      } else {
        const group = groupOf({ key: row.concurrency_key, priority: row.priority });
        const newerInGroup = newerIn.get(group) ?? 0;
        view = waitingOf(sql, store.fair, row, now, { rankInGroup: (groupSizes.get(group) ?? 0) - newerInGroup - 1, activeTotal });
        newerIn.set(group, newerInGroup + 1);
      }
      views.set(row.task_id, { queue_position: position, waiting: view });
    }
  }
  return ids.map((id) => {
    const row = rows.get(id);
    return row ? store.toTask(row, true, views.get(id)) : null;
  });
}

/** A fair-queue group's name: its priority (no spaces) first keeps any key apart. */
const groupOf = (g: { key: string; priority: number }): string => `${g.priority} ${g.key}`;

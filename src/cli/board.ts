import type { Task } from "../client/types";
import { fit, plain, progressLine, shownPercent } from "./render";

/** Where a board writes: a stream-like object. `isTTY` turns on redrawing in place. */
export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Live progress bars, one line per task. On a terminal the block is redrawn in place; elsewhere
 * (a pipe, a CI log) a line is printed when a task's status changes or its progress crosses a
 * tenth, so logs stay readable.
 */
export class ProgressBoard {
  private readonly rows = new Map<string, { task: Task | null; text: string; milestone?: string }>();
  private readonly printed = new Map<string, string>();
  private drawn = 0;

  constructor(private readonly out: Output) {}

  /** Adds a row for a task before its first state is known. */
  add(taskId: string, text = "waiting for the first state…"): void {
    if (!this.rows.has(taskId)) this.rows.set(taskId, { task: null, text: `… ${taskId} ${text}` });
    this.render(taskId);
  }

  /** Shows a task's newest state. */
  update(task: Task): void {
    this.rows.set(task.task_id, { task, text: progressLine(task) });
    this.render(task.task_id);
  }

  /** Replaces a row's text with a note (an error that is not the task's own). */
  note(taskId: string, text: string): void {
    this.rows.set(taskId, { task: this.rows.get(taskId)?.task ?? null, text: `⚠️ ${taskId} ${text}` });
    this.render(taskId);
  }

  /**
   * Shows a free-form row, such as a total over many tasks. Off a terminal it is printed again
   * only when `milestone` changes.
   */
  set(key: string, text: string, milestone = text): void {
    this.rows.set(key, { task: null, text, milestone });
    this.render(key);
  }

  private render(changed: string): void {
    if (this.out.isTTY) {
      const columns = this.out.columns || 100;
      const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : "";
      // Row text carries the service's words (notes, messages): one line each, no controls.
      const lines = [...this.rows.values()].map((r) => `\x1b[2K${fit(plain(r.text), columns)}\n`);
      this.out.write(up + lines.join(""));
      this.drawn = lines.length;
      return;
    }
    const row = this.rows.get(changed);
    if (!row) return;
    const key = row.task ? `${row.task.status}:${Math.floor((shownPercent(row.task) ?? -10) / 10)}:${row.task.error?.code ?? ""}` : (row.milestone ?? row.text);
    if (this.printed.get(changed) === key) return;
    this.printed.set(changed, key);
    this.out.write(`${plain(row.text)}\n`);
  }
}

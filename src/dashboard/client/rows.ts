import type { Task } from "../../client/types.js";
import { api, isTask, showNotice } from "./api.js";
import { select } from "./detail.js";
import { el, ui } from "./dom.js";
import { statusIcon } from "./icons.js";
import { type Entry, hooks, type RowCells, state, TERMINAL } from "./state.js";

/** How many tasks the page keeps in memory; past it the oldest finished ones go. */
const MAX_TASKS = 500;

const matches = (task: Task): boolean =>
  (state.filter.statuses.length === 0 || state.filter.statuses.includes(task.status)) &&
  (state.filter.types.length === 0 || state.filter.types.includes(task.task_type));

/** Newest first, as the API lists them. */
const newer = (a: Task, b: Task): boolean => (a.created_at === b.created_at ? a.task_id > b.task_id : a.created_at > b.created_at);

function lineOf(...children: Node[]): HTMLDivElement {
  const line = el("div", "bar-line");
  line.append(...children);
  return line;
}

function buildRow(taskId: string): { row: HTMLTableRowElement; cells: RowCells } {
  const row = el("tr");
  row.dataset.taskId = taskId;
  row.tabIndex = 0;
  const cells: RowCells = {
    icon: el("span", "icon-slot"), status: el("span", "status-name"), type: el("div", "task-type"),
    bar: el("progress"), percent: el("span", "percent"), message: el("div", "message"),
    position: el("div", "queue-position"), error: el("div", "task-error"),
    inputs: el("code"), created: el("time"), cancel: el("button", "cancel", "Cancel"),
  };
  cells.bar.max = 100;
  cells.cancel.type = "button";
  const cell = (className: string, ...children: Node[]) => {
    const td = el("td", className);
    td.append(...children);
    return td;
  };
  row.append(
    cell("status", cells.icon, cells.status),
    cell("task", cells.type, el("div", "task-id", taskId)),
    cell("progress", lineOf(cells.bar, cells.percent), cells.position, cells.message, cells.error),
    cell("inputs", cells.inputs),
    cell("created", cells.created),
    cell("actions", cells.cancel),
  );
  row.addEventListener("click", () => select(taskId));
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target === row) select(taskId);
  });
  cells.cancel.addEventListener("click", (e) => {
    e.stopPropagation();
    void cancel(taskId, cells.cancel);
  });
  return { row, cells };
}

/** The bar's value: a completed task is whole, whatever its last report said (SPEC §5). */
export function percentOf(task: Task): number | null {
  if (task.status === "completed") return 100;
  return typeof task.progress?.percent === "number" ? task.progress.percent : null;
}

const REASON_TEXT: Record<string, (position: number) => string> = {
  concurrency_limit: (n) => `#${n} in queue`,
  concurrency_key: (n) => `#${n} for its key's slots`,
  scheduled: (n) => `scheduled · #${n} to start`,
  rate_limited: (n) => `#${n} · rate limited`,
};

/** Seconds to a short phrase: "~40 s", "~3 min". */
const etaText = (seconds: number): string => `~${seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`}`;

/**
 * Where a waiting task stands (SPEC §5 "Why a task waits"): its place among the tasks waiting
 * for the same reason; the estimated start goes in the tooltip (`titleOf`).
 */
export function positionOf(task: Task): string {
  if (task.status !== "created") return "";
  const waiting = task.waiting;
  if (waiting && typeof waiting.position === "number") return (REASON_TEXT[waiting.reason] ?? ((n: number) => `#${n} in queue`))(waiting.position);
  if (typeof task.queue_position === "number") return `#${task.queue_position} in queue`;
  return "waiting for a slot";
}

/** The tooltip of a waiting task's place: why it waits and when it should start. */
export function positionTitleOf(task: Task): string {
  const waiting = task.status === "created" ? task.waiting : null;
  if (!waiting) return "";
  const why = `waits: ${waiting.reason.replaceAll("_", " ")}`;
  return typeof waiting.eta_seconds === "number" ? `${why}; starts in ${etaText(waiting.eta_seconds)}` : why;
}

function fillRow(entry: Entry, cells: RowCells, row: HTMLTableRowElement): void {
  const { task } = entry;
  row.dataset.status = task.status;
  row.setAttribute("aria-selected", String(state.selected === task.task_id));
  if (cells.icon.dataset.status !== task.status) {
    cells.icon.dataset.status = task.status;
    cells.icon.replaceChildren(statusIcon(task.status));
  }
  cells.status.textContent = task.status;
  cells.type.textContent = task.task_type;
  const progress = task.progress ?? { percent: null, message: null, processed: null, total: null };
  const percent = percentOf(task);
  if (percent !== null) cells.bar.value = percent;
  else if (task.status === "processing") cells.bar.removeAttribute("value");
  else cells.bar.value = 0;
  cells.bar.setAttribute("aria-label", percent === null ? "progress unknown" : `progress ${percent}%`);
  cells.percent.textContent = percent === null ? "" : `${Math.round(percent)}%`;
  cells.position.textContent = positionOf(task);
  cells.position.title = positionTitleOf(task);
  const counted = typeof progress.processed === "number" ? `${progress.processed}${typeof progress.total === "number" ? `/${progress.total}` : ""}` : "";
  cells.message.textContent = [typeof progress.message === "string" ? progress.message : "", counted].filter(Boolean).join(" · ");
  cells.error.textContent = task.error ? `${task.error.code}: ${task.error.message}` : "";
  const inputs = JSON.stringify(task.inputs ?? {});
  cells.inputs.textContent = inputs.length > 160 ? `${inputs.slice(0, 159)}…` : inputs;
  cells.inputs.title = inputs.length > 2000 ? `${inputs.slice(0, 1999)}…` : inputs;
  cells.created.dateTime = task.created_at;
  cells.created.title = task.created_at;
  cells.created.textContent = new Date(task.created_at).toLocaleString();
  cells.cancel.hidden = TERMINAL.has(task.status);
}

/** Shows, updates, moves or hides an entry's row after its task changed. */
function render(entry: Entry): void {
  if (!matches(entry.task)) {
    entry.row?.remove();
  } else {
    if (!entry.row || !entry.cells) Object.assign(entry, buildRow(entry.task.task_id));
    const { row, cells } = entry;
    if (!row || !cells) return;
    fillRow(entry, cells, row);
    if (!row.isConnected) {
      let before: Element | null = null;
      for (const other of ui.rows.children) {
        const shown = state.tasks.get((other as HTMLElement).dataset.taskId ?? "");
        if (shown && newer(entry.task, shown.task)) {
          before = other;
          break;
        }
      }
      ui.rows.insertBefore(row, before);
    }
  }
  ui.empty.hidden = ui.rows.children.length > 0;
  hooks.taskChanged(entry);
}

/**
 * Takes a task snapshot unless the row already shows a later one: a stream event (seq > 0)
 * must be newer than the last applied event, any snapshot no older by updated_at, and a
 * finished task never goes back.
 */
export function upsert(task: Task, seq: number): boolean {
  let entry = state.tasks.get(task.task_id);
  if (entry) {
    if (seq > 0 && seq <= entry.seq) return false;
    if (task.updated_at < entry.task.updated_at) return false;
    if (TERMINAL.has(entry.task.status) && !TERMINAL.has(task.status)) return false;
    entry.task = task;
    if (seq > 0) entry.seq = seq;
  } else {
    entry = { task, seq, row: null, cells: null };
    state.tasks.set(task.task_id, entry);
    evict();
  }
  render(entry);
  return true;
}

/** Keeps memory bounded on a busy namespace: the oldest finished tasks go first. */
function evict(): void {
  if (state.tasks.size <= MAX_TASKS) return;
  let oldest: Entry | null = null;
  for (const entry of state.tasks.values()) {
    if (!TERMINAL.has(entry.task.status) || entry.task.task_id === state.selected) continue;
    if (!oldest || newer(oldest.task, entry.task)) oldest = entry;
  }
  if (!oldest) return;
  state.tasks.delete(oldest.task.task_id);
  oldest.row?.remove();
}

/** Forgets every task and row (a new session or filter). */
export function clearTasks(): void {
  for (const entry of state.tasks.values()) entry.row?.remove();
  state.tasks.clear();
}

async function cancel(taskId: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  button.textContent = "Cancelling…";
  const mine = state.session;
  try {
    const task = await api(`/v1/tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST" });
    if (mine === state.session && isTask(task)) upsert(task, 0);
  } catch (err) {
    showNotice(err);
  } finally {
    button.disabled = false;
    button.textContent = "Cancel";
  }
}

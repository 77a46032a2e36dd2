import type { LogLine } from "../../client/types.js";
import { api, logPage, showNotice } from "./api.js";
import { el, throttle, ui } from "./dom.js";
import { statusIcon } from "./icons.js";
import { state } from "./state.js";

/** At most this many pages of 100 log lines are shown; the panel says when there are more. */
const LOG_PAGES = 10;
const LOGS_EVERY_MS = 1000;

function markSelected(taskId: string | null, selected: boolean): void {
  const row = taskId ? state.tasks.get(taskId)?.row : undefined;
  row?.setAttribute("aria-selected", String(selected));
}

/** Opens the detail panel on a task: its JSON and its log lines. */
export function select(taskId: string): void {
  markSelected(state.selected, false);
  state.selected = taskId;
  markSelected(taskId, true);
  ui.logs.replaceChildren();
  ui.logsEmpty.textContent = "Loading…";
  ui.logsEmpty.hidden = false;
  ui.detail.hidden = false;
  renderDetail();
  loadLogs(state.session, taskId).catch(showNotice);
}

export function closeDetail(): void {
  markSelected(state.selected, false);
  state.selected = null;
  ui.detail.hidden = true;
}

export function renderDetail(): void {
  const entry = state.selected ? state.tasks.get(state.selected) : undefined;
  if (!entry) return;
  if (ui.detailIcon.dataset.status !== entry.task.status) {
    ui.detailIcon.dataset.status = entry.task.status;
    ui.detailIcon.replaceChildren(statusIcon(entry.task.status));
  }
  ui.detailTitle.textContent = entry.task.task_id;
  ui.detailTask.textContent = JSON.stringify(entry.task, null, 2);
}

function logItem(line: LogLine): HTMLLIElement {
  const li = el("li");
  const time = el("time", "", new Date(line.timestamp).toLocaleTimeString());
  time.dateTime = line.timestamp;
  li.append(time, " ", el("span", `level level-${line.level}`, line.level), " ", el("span", "log-message", line.message));
  return li;
}

async function loadLogs(mine: number, taskId: string): Promise<void> {
  const lines: LogLine[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < LOG_PAGES; page++) {
    const params = new URLSearchParams({ limit: "100" });
    if (cursor) params.set("cursor", cursor);
    const body = logPage(await api(`/v1/tasks/${encodeURIComponent(taskId)}/logs?${params}`));
    lines.push(...body.results);
    cursor = body.pagination.next_cursor;
    if (!cursor) break;
  }
  if (mine !== state.session || state.selected !== taskId) return;
  ui.logs.replaceChildren(...lines.map(logItem));
  ui.logsEmpty.textContent = cursor ? `Showing the first ${lines.length} lines.` : "No log lines.";
  ui.logsEmpty.hidden = lines.length > 0 && !cursor;
}

/** Reloads the open task's logs after its events, at most once a second. */
export const logsSoon = throttle(() => {
  if (state.selected) loadLogs(state.session, state.selected).catch(showNotice);
}, LOGS_EVERY_MS);

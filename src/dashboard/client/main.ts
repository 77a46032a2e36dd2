/**
 * The dashboard's script. Flow: the key (session storage only) → the namespace's event stream is
 * opened first, then the first page of tasks is loaded, so no change falls between the two.
 * Events upsert tasks by task_id (rows.ts) and feed the charts (charts.ts); a dropped stream
 * reconnects with backoff and Last-Event-ID (stream.ts).
 */
import type { TaskStatus } from "../../client/types.js";
import { api, isStats, isTask, pageOf, showNotice, worthRetrying } from "./api.js";
import { chartsSoon, recordStats, resetCharts } from "./charts.js";
import { closeDetail, renderDetail } from "./detail.js";
import { el, setConnection, throttle, ui } from "./dom.js";
import { clearTasks, upsert } from "./rows.js";
import { hooks, isStatus, state } from "./state.js";
import { connect, reconnectNow, stopStream } from "./stream.js";

const KEY_STORAGE = "edge-tasks.api-key";
const PAGE_SIZE = 50;
const STATS_EVERY_MS = 2000;
const FIRST_PAGE_RETRY_MS = 3000;

function listQuery(cursor: string | null): string {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter.statuses.length) params.set("status", state.filter.statuses.join(","));
  if (state.filter.types.length) params.set("task_type", state.filter.types.join(","));
  if (cursor) params.set("cursor", cursor);
  return `/v1/tasks?${params}`;
}

async function loadPage(mine: number, cursor: string | null): Promise<void> {
  const page = pageOf(await api(listQuery(cursor)), isTask);
  if (mine !== state.session) return;
  if (!cursor) {
    ui.notice.textContent = "";
    ui.board.setAttribute("aria-busy", "false");
  }
  for (const task of page.results) upsert(task, 0);
  state.nextCursor = page.pagination.next_cursor;
  ui.more.hidden = !state.nextCursor;
  ui.empty.hidden = ui.rows.children.length > 0;
}

/** The first page, once the stream is open; retried while the stream stays up. */
function loadFirstPage(mine: number): void {
  loadPage(mine, null).catch((err: unknown) => {
    showNotice(err);
    if (!worthRetrying(err)) return;
    setTimeout(() => {
      if (mine === state.session) loadFirstPage(mine);
    }, FIRST_PAGE_RETRY_MS);
  });
}

/**
 * A waiting task's place changes when others are admitted or cancelled, with no event of its
 * own: after the counts change, the waiting tasks the page shows are read again.
 */
async function refreshPositions(mine: number): Promise<void> {
  if (![...state.tasks.values()].some((entry) => entry.task.status === "created")) return;
  const params = new URLSearchParams({ status: "created", limit: "100" });
  if (state.filter.types.length) params.set("task_type", state.filter.types.join(","));
  const page = pageOf(await api(`/v1/tasks?${params}`), isTask);
  if (mine !== state.session) return;
  // Only tasks the page already holds: this is a refresh, not a second list.
  for (const task of page.results) if (state.tasks.has(task.task_id)) upsert(task, 0);
}

let lastCounts = "";

async function loadStats(mine: number): Promise<void> {
  const stats = await api("/v1/tasks/stats");
  if (mine !== state.session || !isStats(stats)) return;
  recordStats(stats);
  const counts = `${stats.created}/${stats.queued}/${stats.processing}/${stats.max_concurrent_tasks}`;
  if (counts !== lastCounts) {
    lastCounts = counts;
    refreshPositions(mine).catch(showNotice);
  }
  const active = stats.queued + stats.processing;
  const part = (name: string, value: number, label: string) => {
    const count = el("b", "", String(value));
    count.dataset.count = name;
    const span = el("span", `count count-${name}`);
    span.append(count, label);
    return span;
  };
  ui.counts.replaceChildren(
    part("active", active, ""), "/", part("limit", stats.max_concurrent_tasks, " slots"), " · ",
    part("processing", stats.processing, " processing"), " · ",
    part("queued", stats.queued, " queued"), " · ",
    part("created", stats.created, " waiting"),
  );
  ui.counts.title = `${active} of ${stats.max_concurrent_tasks} concurrent slots in use; ${stats.created} created tasks wait for one`;
}
const statsSoon = throttle(() => loadStats(state.session).catch(showNotice), STATS_EVERY_MS);

/** Starts over: the stream from now, the first page of the list under the current filters. */
function start(): void {
  state.session++;
  stopStream();
  clearTasks();
  closeDetail();
  resetCharts();
  state.lastSeq = 0;
  state.listLoaded = false;
  state.nextCursor = null;
  ui.more.hidden = true;
  ui.notice.textContent = "";
  ui.empty.hidden = false;
  ui.board.setAttribute("aria-busy", "true");
  void connect(state.session);
}

function showBoard(): void {
  ui.keyForm.hidden = true;
  ui.board.hidden = false;
  ui.forget.hidden = false;
}

function forget(): void {
  sessionStorage.removeItem(KEY_STORAGE);
  state.apiKey = null;
  state.session++;
  stopStream();
  clearTasks();
  closeDetail();
  ui.counts.replaceChildren();
  ui.board.hidden = true;
  ui.forget.hidden = true;
  ui.keyForm.hidden = false;
  ui.keyInput.value = "";
  ui.keyError.textContent = "";
  setConnection("idle", "not connected");
  ui.keyInput.focus();
}

function keyRefused(): void {
  if (state.apiKey === null) return;
  forget();
  ui.keyError.textContent = "The service refused this API key. Enter another.";
}

function readFilters(): void {
  const statuses = ui.statusFilter.value.split(",").filter((s): s is TaskStatus => isStatus(s));
  const types = ui.typeFilter.value.split(",").map((t) => t.trim()).filter(Boolean);
  state.filter = { statuses, types };
}

hooks.keyRefused = keyRefused;
hooks.restart = start;
hooks.taskChanged = (entry) => {
  statsSoon();
  chartsSoon();
  if (state.selected === entry.task.task_id) renderDetail();
};
hooks.streamOpened = (mine, reconnected) => {
  // What failed while the stream was down (a stats call, a page) is history now.
  if (reconnected) ui.notice.textContent = "";
  if (!state.listLoaded) {
    state.listLoaded = true;
    loadFirstPage(mine);
  }
  statsSoon();
};

ui.keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  state.apiKey = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  ui.keyInput.value = "";
  ui.keyError.textContent = "";
  showBoard();
  start();
});
ui.forget.addEventListener("click", forget);
ui.filters.addEventListener("submit", (e) => {
  e.preventDefault();
  readFilters();
  start();
});
for (const input of [ui.statusFilter, ui.typeFilter]) {
  input.addEventListener("change", () => {
    readFilters();
    start();
  });
}
ui.more.addEventListener("click", () => {
  if (state.nextCursor) loadPage(state.session, state.nextCursor).catch(showNotice);
});
ui.detailClose.addEventListener("click", closeDetail);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && state.selected) closeDetail();
});
window.addEventListener("online", reconnectNow);

state.apiKey = sessionStorage.getItem(KEY_STORAGE);
if (state.apiKey) {
  showBoard();
  start();
} else {
  ui.keyForm.hidden = false;
  ui.keyInput.focus();
}
// The script ran to its end: the tests check this before trusting that nothing went wrong.
document.documentElement.dataset.dashboard = "ready";

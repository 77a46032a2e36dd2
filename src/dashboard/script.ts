/**
 * The dashboard's script: plain JavaScript for current browsers, no build step, served as its
 * own file so the page's Content-Security-Policy can forbid inline script. Everything it shows
 * comes from task data that anyone with a key can write (inputs, messages, logs), so it renders
 * with textContent and DOM APIs only; the CSP's Trusted Types rule makes an innerHTML a TypeError.
 *
 * Flow: the key (session storage only) → the namespace's event stream is opened first, then the
 * first page of tasks is loaded, so no change falls between the two. Events upsert tasks by
 * task_id; an event older than what a row already shows (by sequence, or by updated_at against
 * a listed snapshot) is ignored. A dropped stream reconnects with backoff and Last-Event-ID.
 */
export const DASHBOARD_JS = String.raw`"use strict";
(() => {
  const KEY_STORAGE = "edge-tasks.api-key";
  const ICONS = { created: "🟢", queued: "⏱️", processing: "⚙️", completed: "✅", failed: "❌", cancelled: "🚫" };
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const PAGE_SIZE = 50;
  const MAX_TASKS = 500;
  const LOG_PAGES = 10;
  // The server sends a keep-alive comment every 15 s: three missed ones mean a dead connection.
  const STALL_MS = 45000;
  const STATS_EVERY_MS = 2000;
  const LOGS_EVERY_MS = 1000;
  const MAX_BACKOFF_MS = 30000;
  // Events are kept at least 24 h: after an hour away (a sleeping laptop) a fresh list is
  // cheaper and safer than replaying everything since.
  const RESYNC_AFTER_MS = 3600000;

  const byId = (id) => {
    const el = document.getElementById(id);
    if (!el) throw new Error("dashboard: missing #" + id);
    return el;
  };
  const ui = {
    keyForm: byId("key-form"), keyInput: byId("key"), keyError: byId("key-error"),
    board: byId("board"), forget: byId("forget"), connection: byId("connection"), counts: byId("counts"),
    filters: byId("filters"), statusFilter: byId("status-filter"), typeFilter: byId("type-filter"),
    notice: byId("notice"), rows: byId("rows"), empty: byId("empty"), more: byId("more"),
    detail: byId("detail"), detailClose: byId("detail-close"), detailTitle: byId("detail-title"),
    detailTask: byId("detail-task"), logs: byId("logs"), logsEmpty: byId("logs-empty"),
  };

  /** task_id → { task, seq, row, cells } */
  const tasks = new Map();
  let apiKey = null;
  /** Bumped by every reset: async work started under an older session drops its result. */
  let session = 0;
  let lastSeq = 0;
  let lastHeardAt = 0;
  let stream = null;
  let reconnectTimer = 0;
  let reconnectAttempts = 0;
  /** Whether the first page was asked for since the last reset (the stream is open by then). */
  let listLoaded = false;
  let nextCursor = null;
  let selected = null;
  let filter = { statuses: [], types: [] };

  class KeyRefused extends Error {}
  /** An answer other than 2xx, with its status: a 4xx is not worth repeating as it was. */
  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  const worthRetrying = (err) =>
    !(err instanceof KeyRefused) && !(err instanceof ApiFailure && err.status < 500 && err.status !== 408 && err.status !== 429);

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  function throttle(fn, ms) {
    let timer = 0;
    let last = 0;
    return () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = 0;
        last = Date.now();
        fn();
      }, Math.max(0, last + ms - Date.now()));
    };
  }

  async function errorMessage(res) {
    try {
      const body = await res.json();
      if (body && body.error && typeof body.error.message === "string") return body.error.message;
    } catch {
      // not JSON: the status line says enough
    }
    return res.status + " " + res.statusText;
  }

  /** A JSON call to the API with the key; a refused key ends the session. */
  async function api(path, init) {
    const key = apiKey;
    const headers = new Headers((init && init.headers) || {});
    headers.set("Authorization", "Bearer " + key);
    const res = await fetch(path, { ...init, headers, cache: "no-store" });
    if (res.status === 401) {
      // Only if it is still the key in use: a late answer must not drop a newly entered one.
      if (key === apiKey) keyRefused();
      throw new KeyRefused("the API key was refused");
    }
    if (!res.ok) throw new ApiFailure(res.status, await errorMessage(res));
    return res.json();
  }

  function showNotice(err) {
    if (err instanceof KeyRefused) return;
    ui.notice.textContent = err instanceof Error ? err.message : String(err);
  }

  function setConnection(state, text) {
    ui.connection.dataset.state = state;
    ui.connection.textContent = text;
  }

  const isTask = (t) =>
    t !== null && typeof t === "object" && typeof t.task_id === "string" && typeof t.status === "string" &&
    typeof t.task_type === "string" && typeof t.created_at === "string" && typeof t.updated_at === "string";

  const matches = (task) =>
    (filter.statuses.length === 0 || filter.statuses.includes(task.status)) &&
    (filter.types.length === 0 || filter.types.includes(task.task_type));

  /** Newest first, as the API lists them. */
  const newer = (a, b) => (a.created_at === b.created_at ? a.task_id > b.task_id : a.created_at > b.created_at);

  // ---- rows ----------------------------------------------------------------------------------

  function buildRow(taskId) {
    const row = el("tr");
    row.dataset.taskId = taskId;
    row.tabIndex = 0;
    const cells = {
      icon: el("span", "icon"), status: el("span", "status-name"),
      type: el("div", "task-type"), id: el("div", "task-id", taskId),
      bar: el("progress"), percent: el("span", "percent"), message: el("div", "message"), error: el("div", "task-error"),
      inputs: el("code"), created: el("time"), cancel: el("button", "cancel", "Cancel"),
    };
    cells.bar.max = 100;
    cells.cancel.type = "button";
    const statusCell = el("td", "status");
    statusCell.append(cells.icon, cells.status);
    const taskCell = el("td", "task");
    taskCell.append(cells.type, cells.id);
    const progressCell = el("td", "progress");
    progressCell.append(cells.bar, cells.percent, cells.message, cells.error);
    const inputsCell = el("td", "inputs");
    inputsCell.append(cells.inputs);
    const createdCell = el("td", "created");
    createdCell.append(cells.created);
    const actionCell = el("td", "actions");
    actionCell.append(cells.cancel);
    row.append(statusCell, taskCell, progressCell, inputsCell, createdCell, actionCell);
    row.addEventListener("click", () => select(taskId));
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && e.target === row) select(taskId);
    });
    cells.cancel.addEventListener("click", (e) => {
      e.stopPropagation();
      cancel(taskId, cells.cancel);
    });
    return { row, cells };
  }

  function fillRow(entry) {
    const { task, cells } = entry;
    entry.row.dataset.status = task.status;
    entry.row.setAttribute("aria-selected", String(selected === task.task_id));
    cells.icon.textContent = ICONS[task.status] || "?";
    cells.status.textContent = task.status;
    cells.type.textContent = task.task_type;
    const progress = task.progress || {};
    const percent = typeof progress.percent === "number" ? progress.percent : task.status === "completed" ? 100 : null;
    if (percent !== null) cells.bar.value = percent;
    else if (task.status === "processing") cells.bar.removeAttribute("value");
    else cells.bar.value = 0;
    cells.bar.setAttribute("aria-label", percent === null ? "progress unknown" : "progress " + percent + "%");
    cells.percent.textContent = percent === null ? "" : Math.round(percent) + "%";
    const counted = typeof progress.processed === "number" ? progress.processed + (typeof progress.total === "number" ? "/" + progress.total : "") : "";
    cells.message.textContent = [typeof progress.message === "string" ? progress.message : "", counted].filter(Boolean).join(" · ");
    cells.error.textContent = task.error ? task.error.code + ": " + task.error.message : "";
    const inputs = JSON.stringify(task.inputs === undefined ? {} : task.inputs);
    cells.inputs.textContent = inputs.length > 160 ? inputs.slice(0, 159) + "…" : inputs;
    cells.inputs.title = inputs.length > 2000 ? inputs.slice(0, 1999) + "…" : inputs;
    cells.created.dateTime = task.created_at;
    cells.created.title = task.created_at;
    cells.created.textContent = new Date(task.created_at).toLocaleString();
    cells.cancel.hidden = TERMINAL.has(task.status);
  }

  /** Shows, updates, moves or hides an entry's row after its task changed. */
  function render(entry) {
    if (!matches(entry.task)) {
      if (entry.row) entry.row.remove();
    } else {
      if (!entry.row) Object.assign(entry, buildRow(entry.task.task_id));
      fillRow(entry);
      if (!entry.row.isConnected) {
        let before = null;
        for (const other of ui.rows.children) {
          const o = tasks.get(other.dataset.taskId);
          if (o && newer(entry.task, o.task)) {
            before = other;
            break;
          }
        }
        ui.rows.insertBefore(entry.row, before);
      }
    }
    ui.empty.hidden = ui.rows.children.length > 0;
    if (selected === entry.task.task_id) renderDetail();
  }

  /**
   * Takes a task snapshot unless the row already shows a later one: a stream event (seq > 0)
   * must be newer than the last applied event, any snapshot no older by updated_at, and a
   * finished task never goes back.
   */
  function upsert(task, seq) {
    let entry = tasks.get(task.task_id);
    if (entry) {
      if (seq > 0 && seq <= entry.seq) return false;
      if (task.updated_at < entry.task.updated_at) return false;
      if (TERMINAL.has(entry.task.status) && !TERMINAL.has(task.status)) return false;
      entry.task = task;
      if (seq > 0) entry.seq = seq;
    } else {
      entry = { task, seq, row: null, cells: null };
      tasks.set(task.task_id, entry);
      evict();
    }
    render(entry);
    return true;
  }

  /** Keeps memory bounded on a busy namespace: the oldest finished tasks go first. */
  function evict() {
    if (tasks.size <= MAX_TASKS) return;
    let oldest = null;
    for (const entry of tasks.values()) {
      if (!TERMINAL.has(entry.task.status) || entry.task.task_id === selected) continue;
      if (!oldest || newer(oldest.task, entry.task)) oldest = entry;
    }
    if (!oldest) return;
    tasks.delete(oldest.task.task_id);
    if (oldest.row) oldest.row.remove();
  }

  // ---- the list, stats, cancel ---------------------------------------------------------------

  function listQuery(cursor) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (filter.statuses.length) params.set("status", filter.statuses.join(","));
    if (filter.types.length) params.set("task_type", filter.types.join(","));
    if (cursor) params.set("cursor", cursor);
    return "/v1/tasks?" + params;
  }

  async function loadPage(mine, cursor) {
    const page = await api(listQuery(cursor));
    if (mine !== session) return;
    if (!cursor) {
      ui.notice.textContent = "";
      ui.board.setAttribute("aria-busy", "false");
    }
    for (const task of page.results) if (isTask(task)) upsert(task, 0);
    nextCursor = page.pagination && page.pagination.next_cursor;
    ui.more.hidden = !nextCursor;
    ui.empty.hidden = ui.rows.children.length > 0;
  }

  /** The first page, once the stream is open; retried while the stream stays up. */
  function loadFirstPage(mine) {
    loadPage(mine, null).catch((err) => {
      showNotice(err);
      if (!worthRetrying(err)) return;
      setTimeout(() => {
        if (mine === session) loadFirstPage(mine);
      }, 3000);
    });
  }

  async function loadStats(mine) {
    const stats = await api("/v1/tasks/stats");
    if (mine !== session) return;
    const active = stats.queued + stats.processing;
    const part = (name, value, label) => {
      const b = el("b", "", String(value));
      b.dataset.count = name;
      const span = el("span");
      span.append(b, label);
      return span;
    };
    ui.counts.replaceChildren(
      part("active", active, ""), "/", part("limit", stats.max_concurrent_tasks, " slots"), " · ",
      part("processing", stats.processing, " " + ICONS.processing + " processing"), " · ",
      part("queued", stats.queued, " " + ICONS.queued + " queued"), " · ",
      part("created", stats.created, " " + ICONS.created + " waiting"),
    );
    ui.counts.title = active + " of " + stats.max_concurrent_tasks + " concurrent slots in use; " + stats.created + " created tasks wait for one";
  }
  const statsSoon = throttle(() => loadStats(session).catch(showNotice), STATS_EVERY_MS);

  async function cancel(taskId, button) {
    button.disabled = true;
    button.textContent = "Cancelling…";
    const mine = session;
    try {
      const task = await api("/v1/tasks/" + encodeURIComponent(taskId) + "/cancel", { method: "POST" });
      if (mine === session && isTask(task)) upsert(task, 0);
      statsSoon();
    } catch (err) {
      showNotice(err);
    } finally {
      button.disabled = false;
      button.textContent = "Cancel";
    }
  }

  // ---- detail and logs -----------------------------------------------------------------------

  function select(taskId) {
    const previous = selected && tasks.get(selected);
    selected = taskId;
    if (previous && previous.row) previous.row.setAttribute("aria-selected", "false");
    const entry = tasks.get(taskId);
    if (entry && entry.row) entry.row.setAttribute("aria-selected", "true");
    ui.logs.replaceChildren();
    ui.logsEmpty.textContent = "Loading…";
    ui.logsEmpty.hidden = false;
    ui.detail.hidden = false;
    renderDetail();
    loadLogs(session, taskId).catch(showNotice);
  }

  function closeDetail() {
    const entry = selected && tasks.get(selected);
    if (entry && entry.row) entry.row.setAttribute("aria-selected", "false");
    selected = null;
    ui.detail.hidden = true;
  }

  function renderDetail() {
    const entry = selected && tasks.get(selected);
    if (!entry) return;
    ui.detailTitle.textContent = (ICONS[entry.task.status] || "") + " " + entry.task.task_id;
    ui.detailTask.textContent = JSON.stringify(entry.task, null, 2);
  }

  async function loadLogs(mine, taskId) {
    const lines = [];
    let cursor = null;
    for (let page = 0; page < LOG_PAGES; page++) {
      const params = new URLSearchParams({ limit: "100" });
      if (cursor) params.set("cursor", cursor);
      const body = await api("/v1/tasks/" + encodeURIComponent(taskId) + "/logs?" + params);
      lines.push(...body.results);
      cursor = body.pagination && body.pagination.next_cursor;
      if (!cursor) break;
    }
    if (mine !== session || selected !== taskId) return;
    ui.logs.replaceChildren(
      ...lines.map((line) => {
        const li = el("li");
        const time = el("time", "", new Date(line.timestamp).toLocaleTimeString());
        time.dateTime = line.timestamp;
        li.append(time, " ", el("span", "level level-" + line.level, line.level), " ", el("span", "log-message", line.message));
        return li;
      }),
    );
    ui.logsEmpty.textContent = cursor ? "Showing the first " + lines.length + " lines." : "No log lines.";
    ui.logsEmpty.hidden = lines.length > 0 && !cursor;
  }
  const logsSoon = throttle(() => {
    if (selected) loadLogs(session, selected).catch(showNotice);
  }, LOGS_EVERY_MS);

  // ---- the event stream ----------------------------------------------------------------------

  /** A Server-Sent Events parser: feed it text as it arrives, it calls onEvent per event. */
  function sseParser(onEvent) {
    let buffer = "";
    let id = null;
    let type = "message";
    let data = [];
    return (chunk) => {
      buffer += chunk;
      const lines = buffer.split(/\r\n|\n|\r(?!$)/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          // A block with only an id (the stream's starting point) moves the resume point too.
          if (data.length || id !== null) onEvent(type, data.join("\n"), id);
          type = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") type = value;
        else if (field === "id" && !value.includes("\0")) id = value;
      }
    };
  }

  function onStreamEvent(type, data, id) {
    const seq = Number(id);
    const known = Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
    if (known > lastSeq) lastSeq = known;
    if (!type.startsWith("task.")) return;
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    const task = body && body.data && body.data.task;
    if (!isTask(task)) return;
    upsert(task, known);
    statsSoon();
    if (selected === task.task_id) logsSoon();
  }

  function stopStream() {
    clearTimeout(reconnectTimer);
    reconnectTimer = 0;
    const current = stream;
    stream = null;
    if (current) current.abort();
  }

  async function connect(mine) {
    reconnectTimer = 0;
    if (lastSeq > 0 && Date.now() - lastHeardAt > RESYNC_AFTER_MS) {
      start();
      return;
    }
    const controller = new AbortController();
    stream = controller;
    if (reconnectAttempts === 0) setConnection("connecting", "connecting…");
    const params = new URLSearchParams();
    // Only the type goes to the server: a status filter there would hide a task's later changes.
    if (filter.types.length) params.set("task_type", filter.types.join(","));
    const headers = { Authorization: "Bearer " + apiKey, Accept: "text/event-stream" };
    if (lastSeq > 0) headers["Last-Event-ID"] = String(lastSeq);
    let stall = 0;
    const touch = () => {
      clearTimeout(stall);
      stall = setTimeout(() => controller.abort(), STALL_MS);
    };
    let retry = true;
    try {
      touch();
      const query = params.toString();
      const res = await fetch("/v1/events" + (query ? "?" + query : ""), { headers, signal: controller.signal, cache: "no-store" });
      if (stream !== controller) return;
      if (res.status === 401) {
        retry = false;
        keyRefused();
        return;
      }
      if (!res.ok || !res.body) {
        const message = await errorMessage(res);
        // A request the server refuses (bad filter, no such route) fails the same way again.
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          retry = false;
          setConnection("error", "stream refused: " + message);
          return;
        }
        throw new Error(message);
      }
      lastHeardAt = Date.now();
      setConnection("live", "live");
      // What failed while the stream was down (a stats call, a page) is history now.
      if (reconnectAttempts > 0) ui.notice.textContent = "";
      reconnectAttempts = 0;
      if (!listLoaded) {
        listLoaded = true;
        loadFirstPage(mine);
      }
      statsSoon();
      const parse = sseParser(onStreamEvent);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        lastHeardAt = Date.now();
        touch();
        if (stream !== controller) return;
        try {
          parse(value);
        } catch (err) {
          // A bug in showing an event must not pass for a broken connection (and loop on it).
          reportError(err);
        }
      }
    } catch (err) {
      if (stream !== controller) return;
      if (!(err instanceof DOMException && err.name === "AbortError")) console.warn("edge-tasks stream:", err);
    } finally {
      clearTimeout(stall);
    }
    if (retry && stream === controller && mine === session) scheduleReconnect(mine);
  }

  function scheduleReconnect(mine) {
    reconnectAttempts++;
    const cap = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (reconnectAttempts - 1));
    const delay = Math.round(cap * (0.5 + Math.random() * 0.5));
    setConnection("reconnecting", "reconnecting in " + Math.ceil(delay / 1000) + " s…");
    reconnectTimer = setTimeout(() => {
      if (mine === session) connect(mine);
    }, delay);
  }

  // ---- session -------------------------------------------------------------------------------

  /** Starts over: the stream from now, the first page of the list under the current filters. */
  function start() {
    session++;
    stopStream();
    for (const entry of tasks.values()) if (entry.row) entry.row.remove();
    tasks.clear();
    closeDetail();
    lastSeq = 0;
    reconnectAttempts = 0;
    listLoaded = false;
    nextCursor = null;
    ui.more.hidden = true;
    ui.notice.textContent = "";
    ui.empty.hidden = false;
    ui.board.setAttribute("aria-busy", "true");
    connect(session);
  }

  function showBoard() {
    ui.keyForm.hidden = true;
    ui.board.hidden = false;
    ui.forget.hidden = false;
  }

  function forget() {
    sessionStorage.removeItem(KEY_STORAGE);
    apiKey = null;
    session++;
    stopStream();
    for (const entry of tasks.values()) if (entry.row) entry.row.remove();
    tasks.clear();
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

  function keyRefused() {
    if (apiKey === null) return;
    forget();
    ui.keyError.textContent = "The service refused this API key. Enter another.";
  }

  function readFilters() {
    const statuses = ui.statusFilter.value ? ui.statusFilter.value.split(",") : [];
    const types = ui.typeFilter.value.split(",").map((t) => t.trim()).filter(Boolean);
    filter = { statuses, types };
  }

  ui.keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = ui.keyInput.value.trim();
    if (!key) return;
    apiKey = key;
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
  ui.statusFilter.addEventListener("change", () => {
    readFilters();
    start();
  });
  ui.typeFilter.addEventListener("change", () => {
    readFilters();
    start();
  });
  ui.more.addEventListener("click", () => {
    if (nextCursor) loadPage(session, nextCursor).catch(showNotice);
  });
  ui.detailClose.addEventListener("click", closeDetail);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && selected) closeDetail();
  });
  // Back online: no point waiting out the backoff.
  window.addEventListener("online", () => {
    if (reconnectTimer && apiKey) {
      clearTimeout(reconnectTimer);
      connect(session);
    }
  });

  apiKey = sessionStorage.getItem(KEY_STORAGE);
  if (apiKey) {
    showBoard();
    start();
  } else {
    ui.keyForm.hidden = false;
    ui.keyInput.focus();
  }
})();
`;

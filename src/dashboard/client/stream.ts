import { backoffMs, isRecord } from "../../client/http.js";
import { SseParser } from "../../client/sse.js";
import { errorMessage, isTask } from "./api.js";
import { recordEvent } from "./charts.js";
import { logsSoon } from "./detail.js";
import { setConnection } from "./dom.js";
import { upsert } from "./rows.js";
import { hooks, state } from "./state.js";

// The server sends a keep-alive comment every 15 s: three missed ones mean a dead connection.
const STALL_MS = 45_000;
const BACKOFF = { baseDelayMs: 1000, maxDelayMs: 30_000 };
// Events are kept at least 24 h: after an hour away (a sleeping laptop) a fresh list is
// cheaper and safer than replaying everything since.
const RESYNC_AFTER_MS = 3_600_000;

let stream: AbortController | null = null;
let reconnectTimer: ReturnType<typeof setTimeout> | 0 = 0;
let reconnectAttempts = 0;

const sequenceOf = (id: string | undefined): number => {
  const seq = Number(id);
  return id !== undefined && Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
};

function onMessage(type: string, data: string, seq: number): void {
  if (!type.startsWith("task.")) return;
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    return;
  }
  const task = isRecord(body) && isRecord(body.data) ? body.data.task : undefined;
  if (!isTask(task)) return;
  // A replay after a reconnect starts after the resume point, so no event counts twice.
  const fresh = seq === 0 || seq > state.lastSeq;
  if (seq > state.lastSeq) state.lastSeq = seq;
  const at = isRecord(body) && typeof body.created_at === "string" ? Date.parse(body.created_at) : Number.NaN;
  if (fresh) recordEvent(type, task, Number.isNaN(at) ? Date.now() : at);
  upsert(task, seq);
  if (state.selected === task.task_id) logsSoon();
}

export function stopStream(): void {
  clearTimeout(reconnectTimer);
  reconnectTimer = 0;
  reconnectAttempts = 0;
  const current = stream;
  stream = null;
  current?.abort();
}

/** Opens the namespace's event stream (resuming after `state.lastSeq`) and reads it until it ends. */
export async function connect(mine: number): Promise<void> {
  reconnectTimer = 0;
  if (state.lastSeq > 0 && Date.now() - state.lastHeardAt > RESYNC_AFTER_MS) {
    hooks.restart();
    return;
  }
  const controller = new AbortController();
  stream = controller;
  if (reconnectAttempts === 0) setConnection("connecting", "connecting…");
  const params = new URLSearchParams();
  // Only the type goes to the server: a status filter there would hide a task's later changes.
  if (state.filter.types.length) params.set("task_type", state.filter.types.join(","));
  const headers = new Headers({ Authorization: `Bearer ${state.apiKey}`, Accept: "text/event-stream" });
  if (state.lastSeq > 0) headers.set("Last-Event-ID", String(state.lastSeq));
  let stall: ReturnType<typeof setTimeout> | undefined;
  const touch = () => {
    clearTimeout(stall);
    stall = setTimeout(() => controller.abort(), STALL_MS);
  };
  let retry = true;
  try {
    touch();
    const query = params.toString();
    const res = await fetch(`/v1/events${query ? `?${query}` : ""}`, { headers, signal: controller.signal, cache: "no-store" });
    if (stream !== controller) return;
    if (res.status === 401) {
      retry = false;
      hooks.keyRefused();
      return;
    }
    if (!res.ok || !res.body) {
      const message = await errorMessage(res);
      // A request the server refuses (bad filter, no such route) fails the same way again.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        retry = false;
        setConnection("error", `stream refused: ${message}`);
        return;
      }
      throw new Error(message);
    }
    state.lastHeardAt = Date.now();
    setConnection("live", "live");
    const reconnected = reconnectAttempts > 0;
    reconnectAttempts = 0;
    hooks.streamOpened(mine, reconnected);
    const parser = new SseParser();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      state.lastHeardAt = Date.now();
      touch();
      if (stream !== controller) return;
      try {
        for (const message of parser.push(value)) onMessage(message.event, message.data, sequenceOf(message.id));
        // A block with only an id (the stream's starting point) moves the resume point too.
        const resumeAt = sequenceOf(parser.lastEventId);
        if (resumeAt > state.lastSeq) state.lastSeq = resumeAt;
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
  if (retry && stream === controller && mine === state.session) scheduleReconnect(mine);
}

function scheduleReconnect(mine: number): void {
  reconnectAttempts++;
  const delay = backoffMs(BACKOFF, reconnectAttempts - 1);
  setConnection("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
  reconnectTimer = setTimeout(() => {
    if (mine === state.session) void connect(mine);
  }, delay);
}

/** Back online: no point waiting out the backoff. */
export function reconnectNow(): void {
  if (!reconnectTimer || !state.apiKey) return;
  clearTimeout(reconnectTimer);
  void connect(state.session);
}

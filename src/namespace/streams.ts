import type { Sql } from "./sql";
import {
  type Listener,
  readSocketState,
  saveSocketState,
  socketListener,
  sseListener,
  type StreamEvent,
  type StreamFilter,
  type StreamState,
  unsentBytesStrategy,
} from "./stream-sinks";

export type { StreamFilter } from "./stream-sinks";

/** How a new stream starts. */
export interface StreamOpening {
  filter: StreamFilter;
  /** Resume after this sequence number; null: a task's whole retained history, or the namespace's head. */
  after: number | null;
  /** Whether the task can still change here; a task's stream over a finished task ends after its replay. */
  live: boolean;
  /** The API key the stream was opened with. */
  keyId: string;
}

const TERMINAL_EVENTS = new Set(["task.completed", "task.failed", "task.cancelled"]);
const PAGE = 500;
/**
 * Bytes one stream is sent in one turn. A longer backlog (a replay, a burst) goes out a page per
 * turn, so the runtime can pass what was sent on to the client in between rather than hold it all.
 */
const TURN_BYTES = 256 * 1024;
/** The pause between two pages of a backlog. */
const NEXT_PAGE_MS = 20;
const DEFAULT_KEEPALIVE_MS = 15_000;
/** The `max_open_streams` quota when the namespace's settings do not set one (SPEC §4). */
export const DEFAULT_MAX_OPEN_STREAMS = 1000;
/** What a stream refused by the quota is told to wait: streams end at their clients' pace. */
export const STREAM_RETRY_AFTER_SECONDS = 5;
/**
 * How often the keys of open streams are checked against D1. A revoked key may open a stream
 * until the key caches expire (KEY_CACHE_TTL_MS, 30 s); checked within 25 s more, every stream
 * of it ends within the 60 s of SPEC §4 even when the revoking call never reached the object.
 */
export const KEY_CHECK_MS = 25_000;

const matches = (filter: StreamFilter, event: StreamEvent): boolean =>
  (filter.task_id === null || filter.task_id === event.task_id) &&
  (filter.task_types === null || filter.task_types.includes(event.task_type)) &&
  (filter.statuses === null || filter.statuses.includes(event.status));

/**
 * The namespace's live event streams, Server-Sent Events and hibernatable WebSockets alike.
 * Every stream keeps a cursor on the per-namespace event sequence; whenever events are stored,
 * one read from the smallest cursor feeds them all, so a stream resumed with Last-Event-ID
 * replays exactly what it missed and then goes live without a gap or a repeat. The events stay
 * in storage, so a stream that is behind costs its cursor, not a copy of what it has to catch up.
 */
export class EventStreams {
  private readonly sse = new Set<Listener>();
  private scheduled = false;
  private nextPage: ReturnType<typeof setTimeout> | null = null;
  private keepAlive: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly ctx: DurableObjectState,
    private readonly keepAliveMs = DEFAULT_KEEPALIVE_MS,
  ) {}

  /** Events were stored: streams catch up once the current synchronous work has committed. */
  notify(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** The newest event's sequence number, 0 when there is none. */
  head(): number {
    return this.sql.count("SELECT COALESCE(MAX(seq), 0) AS n FROM events");
  }

  /**
   * The newest sequence number ever given, kept by SQLite even once old events are pruned: a
   * Last-Event-ID beyond it names an event that never existed.
   */
  lastIssued(): number {
    return this.sql.count("SELECT COALESCE(MAX(seq), 0) AS n FROM sqlite_sequence WHERE name = 'events'");
  }

  /** Opens a Server-Sent Events stream; it holds at most MAX_UNSENT_BYTES unsent. */
  openSse(opening: StreamOpening): ReadableStream<Uint8Array> {
    let listener: Listener | null = null;
    return new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          listener = sseListener(this.initialState(opening), controller, () => this.drop(listener));
          // The namespace's stream names its starting point at once: a client cut off before the
          // first event still resumes from here, not from wherever the head is when it returns.
          if (opening.filter.task_id === null) controller.enqueue(new TextEncoder().encode(`id: ${listener.cursor}\n\n`));
          this.sse.add(listener);
          this.startKeepAlive();
          this.pump();
        },
        cancel: () => this.drop(listener),
      },
      unsentBytesStrategy,
    );
  }

  /** Accepts a WebSocket for the same stream, through the hibernation API. */
  openSocket(socket: WebSocket, opening: StreamOpening): void {
    this.ctx.acceptWebSocket(socket);
    saveSocketState(socket, this.initialState(opening));
    this.pump();
  }

  /**
   * Sends every stream what it follows past its cursor, up to a page each; streams left behind
   * get the next page on a later turn. Runs without an await, so no event slips between reads.
   */
  pump(): void {
    const listeners: Listener[] = [...this.sse];
    const sockets: [WebSocket, Listener][] = [];
    for (const socket of this.ctx.getWebSockets()) {
      const state = readSocketState(socket);
      if (!state || state.ended) continue;
      const listener = socketListener(socket, state);
      sockets.push([socket, listener]);
      listeners.push(listener);
    }
    for (const listener of listeners) listener.budget = TURN_BYTES;
    for (const listener of listeners) if (listener.replay && !listener.ended) this.replayTask(listener);
    for (;;) {
      const open = listeners.filter((l) => !l.ended && l.replay === null && l.budget > 0);
      if (open.length === 0) break;
      const from = Math.min(...open.map((l) => l.cursor));
      const events = this.read("seq > ?", [from]);
      if (events.length === 0) break;
      const last = events[events.length - 1]!.seq;
      for (const listener of open) this.deliver(listener, events, last);
      if (events.length < PAGE) break;
    }
    for (const [socket, listener] of sockets) saveSocketState(socket, listener);
    if (listeners.some((l) => !l.ended && l.budget <= 0)) this.pumpLater();
    if (this.sse.size === 0) this.stopKeepAlive();
  }

  /** A socket closed or failed: it is forgotten. */
  closeSocket(socket: WebSocket): void {
    const state = readSocketState(socket);
    if (state) saveSocketState(socket, { ...state, ended: true });
  }

  /** How many streams are open: Server-Sent Events here, and sockets, hibernated or not. */
  counts(): { sse: number; websocket: number } {
    let websocket = 0;
    for (const socket of this.ctx.getWebSockets()) if (readSocketState(socket)?.ended === false) websocket++;
    return { sse: this.sse.size, websocket };
  }

  /** The distinct API keys open streams were opened with. */
  keyIds(): string[] {
    const keys = new Set<string>();
    for (const listener of this.sse) if (listener.key_id !== null) keys.add(listener.key_id);
    for (const socket of this.ctx.getWebSockets()) {
      const state = readSocketState(socket);
      if (state && !state.ended && state.key_id !== null) keys.add(state.key_id);
    }
    return [...keys];
  }

  /** Ends every stream opened with `keyId`, hibernated sockets included; returns how many. */
  endKey(keyId: string): number {
    let ended = 0;
    for (const listener of [...this.sse]) {
      if (listener.key_id !== keyId) continue;
      listener.end("key_revoked");
      ended++;
    }
    for (const socket of this.ctx.getWebSockets()) {
      const state = readSocketState(socket);
      if (!state || state.ended || state.key_id !== keyId) continue;
      const listener = socketListener(socket, state);
      listener.end("key_revoked");
      saveSocketState(socket, listener);
      ended++;
    }
    return ended;
  }

  private initialState(opening: StreamOpening): StreamState {
    const { filter, after, live, keyId } = opening;
    // A namespace stream starts after `after` or at the head; a task's stream first replays the
    // task's events through the index on (task_id, seq).
    if (filter.task_id === null) return { filter, cursor: after ?? this.head(), ended: false, key_id: keyId, replay: null };
    return { filter, cursor: after ?? 0, ended: false, key_id: keyId, replay: { live } };
  }

  /** Continues a task's replay from its cursor; once caught up it joins the shared read at the head, or ends. */
  private replayTask(listener: Listener): void {
    const taskId = listener.filter.task_id;
    const replay = listener.replay;
    if (taskId === null || replay === null) return;
    while (!listener.ended && listener.budget > 0) {
      const events = this.read("task_id = ? AND seq > ?", [taskId, listener.cursor]);
      const finished = this.deliver(listener, events, events.at(-1)?.seq ?? listener.cursor);
      if (listener.ended || !finished) return;
      if (events.length < PAGE) {
        listener.replay = null;
        if (!replay.live) listener.end("task_ended");
        else listener.cursor = Math.max(listener.cursor, this.head());
        return;
      }
    }
  }

  /**
   * Sends `events` past the listener's cursor that it follows, while its budget lasts; ends a
   * task's stream at its terminal event. Returns false when the budget ran out first: the
   * cursor then stays on the last event sent, and the rest goes on a later turn.
   */
  private deliver(listener: Listener, events: StreamEvent[], upTo: number): boolean {
    for (const event of events) {
      if (event.seq <= listener.cursor) continue;
      if (matches(listener.filter, event)) {
        if (listener.budget <= 0) return false;
        const sent = listener.send(event);
        if (sent === null) return true;
        listener.budget -= sent;
      }
      listener.cursor = event.seq;
      if (listener.filter.task_id !== null && TERMINAL_EVENTS.has(event.event_type) && matches(listener.filter, event)) {
        listener.end("task_ended");
        return true;
      }
    }
    listener.cursor = Math.max(listener.cursor, upTo);
    return true;
  }

  private read(where: string, params: SqlStorageValue[]): StreamEvent[] {
    return this.sql.all<StreamEvent>(
      `SELECT seq, event_type, task_id, data,
              json_extract(data, '$.data.task.task_type') AS task_type,
              json_extract(data, '$.data.task.status') AS status
         FROM events WHERE task_id IS NOT NULL AND ${where} ORDER BY seq LIMIT ${PAGE}`,
      ...params,
    );
  }

  private pumpLater(): void {
    if (this.nextPage !== null) return;
    this.nextPage = setTimeout(() => {
      this.nextPage = null;
      this.pump();
    }, NEXT_PAGE_MS);
  }

  private drop(listener: Listener | null): void {
    if (!listener) return;
    listener.ended = true;
    this.sse.delete(listener);
    if (this.sse.size === 0) this.stopKeepAlive();
  }

  /** Keep-alive comments keep proxies from closing quiet streams; one timer serves them all. */
  private startKeepAlive(): void {
    if (this.keepAlive !== null) return;
    this.keepAlive = setInterval(() => {
      for (const listener of this.sse) listener.ping();
    }, this.keepAliveMs);
  }

  private stopKeepAlive(): void {
    if (this.keepAlive === null) return;
    clearInterval(this.keepAlive);
    this.keepAlive = null;
  }
}

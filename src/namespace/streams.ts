import type { Sql } from "./sql";

/** What a stream follows: one task, or the namespace's task events narrowed by type and status. */
export interface StreamFilter {
  task_id: string | null;
  task_types: string[] | null;
  statuses: string[] | null;
}

/** A stored event as streams read it. */
type StreamEvent = {
  seq: number;
  event_type: string;
  task_id: string;
  data: string;
  task_type: string;
  status: string;
};

/** A WebSocket's state, kept in its attachment so that it survives hibernation. */
interface SocketState {
  filter: StreamFilter;
  cursor: number;
  ended: boolean;
}

/** One open stream: where it has got to and how it receives events. */
interface Listener {
  filter: StreamFilter;
  cursor: number;
  send(event: StreamEvent): void;
  /** The task's stream is over: its terminal event has been sent. */
  end(): void;
  /** A keep-alive comment, for streams that need one. */
  ping(): void;
  ended: boolean;
}

const TERMINAL_EVENTS = new Set(["task.completed", "task.failed", "task.cancelled"]);
const PAGE = 500;
/** Chunks an SSE reader may leave unread before its stream is cut; it resumes by Last-Event-ID. */
const MAX_QUEUED_CHUNKS = 2000;
const DEFAULT_KEEPALIVE_MS = 15_000;
const encoder = new TextEncoder();

const matches = (filter: StreamFilter, event: StreamEvent): boolean =>
  (filter.task_id === null || filter.task_id === event.task_id) &&
  (filter.task_types === null || filter.task_types.includes(event.task_type)) &&
  (filter.statuses === null || filter.statuses.includes(event.status));

/** `id:`, `event:` and `data:` of one Server-Sent Event; the body is one line of JSON. */
const sseMessage = (event: StreamEvent): string => `id: ${event.seq}\nevent: ${event.event_type}\ndata: ${event.data}\n\n`;

/** A WebSocket frame: the same three fields as JSON. */
const socketMessage = (event: StreamEvent): string =>
  `{"id":"${event.seq}","event":${JSON.stringify(event.event_type)},"data":${event.data}}`;

/**
 * The namespace's live event streams, Server-Sent Events and hibernatable WebSockets alike.
 * Every stream keeps a cursor on the per-namespace event sequence; whenever events are stored,
 * one read from the smallest cursor feeds them all, so a stream resumed with Last-Event-ID
 * replays exactly what it missed and then goes live without a gap or a repeat.
 */
export class EventStreams {
  private readonly sse = new Set<Listener>();
  private scheduled = false;
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
   * Opens a Server-Sent Events stream after `after` (null: a task's stream replays the task's
   * whole retained history, the namespace's stream starts live). `live` tells whether the task
   * can still change here; a task's stream over a finished task ends after its replay.
   */
  openSse(filter: StreamFilter, after: number | null, live: boolean): ReadableStream<Uint8Array> {
    let listener: Listener | null = null;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const push = (text: string): void => {
          if (listener?.ended) return;
          if ((controller.desiredSize ?? 0) < -MAX_QUEUED_CHUNKS) {
            // A reader this far behind is cut off; it resumes from its Last-Event-ID.
            this.drop(listener);
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(text));
        };
        listener = {
          filter,
          cursor: 0,
          ended: false,
          send: (event) => push(sseMessage(event)),
          ping: () => push(": keep-alive\n\n"),
          end: () => {
            this.drop(listener);
            controller.close();
          },
        };
        push(": connected\n\n");
        this.attach(listener, after, live);
        // The namespace's stream names its starting point at once: a client cut off before the
        // first event still resumes from here, not from wherever the head is when it returns.
        if (filter.task_id === null) push(`id: ${listener.cursor}\n\n`);
        if (!listener.ended) {
          this.sse.add(listener);
          this.startKeepAlive();
          // The replay may have been cut short at a page boundary: the shared read finishes it.
          this.pump();
        }
      },
      cancel: () => this.drop(listener),
    });
  }

  /** Accepts a WebSocket for the same stream, through the hibernation API. */
  openSocket(socket: WebSocket, filter: StreamFilter, after: number | null, live: boolean): void {
    this.ctx.acceptWebSocket(socket);
    const listener = this.socketListener(socket, { filter, cursor: 0, ended: false });
    this.attach(listener, after, live);
    this.saveSocket(socket, listener);
    if (!listener.ended) this.pump();
  }

  /** Sends every stream the events past its cursor that it follows. */
  pump(): void {
    const listeners: Listener[] = [...this.sse];
    const sockets: [WebSocket, Listener][] = [];
    for (const socket of this.ctx.getWebSockets()) {
      const state = socket.deserializeAttachment() as SocketState | null;
      if (!state || state.ended) continue;
      const listener = this.socketListener(socket, state);
      sockets.push([socket, listener]);
      listeners.push(listener);
    }
    for (;;) {
      const open = listeners.filter((l) => !l.ended);
      if (open.length === 0) break;
      const from = Math.min(...open.map((l) => l.cursor));
      const events = this.read("seq > ?", [from]);
      if (events.length === 0) break;
      const last = events[events.length - 1]!.seq;
      for (const listener of open) this.deliver(listener, events, last);
      if (events.length < PAGE) break;
    }
    for (const [socket, listener] of sockets) this.saveSocket(socket, listener);
    if (this.sse.size === 0) this.stopKeepAlive();
  }

  /** A socket closed or failed: it is forgotten. */
  closeSocket(socket: WebSocket): void {
    const state = socket.deserializeAttachment() as SocketState | null;
    if (state) socket.serializeAttachment({ ...state, ended: true });
  }

  /** How many streams are open: Server-Sent Events here, and sockets, hibernated or not. */
  counts(): { sse: number; websocket: number } {
    return { sse: this.sse.size, websocket: this.ctx.getWebSockets().length };
  }

  /**
   * Positions a new stream: a task's stream replays the task's events through the index on
   * (task_id, seq) and then joins at the head; a namespace stream starts after `after`, or at
   * the head. Runs without an await, so no event can slip in between replay and cursor.
   */
  private attach(listener: Listener, after: number | null, live: boolean): void {
    const head = this.head();
    const taskId = listener.filter.task_id;
    if (taskId === null) {
      listener.cursor = after ?? head;
      return;
    }
    let cursor = after ?? 0;
    for (;;) {
      const events = this.read("task_id = ? AND seq > ?", [taskId, cursor]);
      this.deliver(listener, events, cursor);
      if (listener.ended || events.length < PAGE) break;
      cursor = events[events.length - 1]!.seq;
    }
    if (listener.ended) return;
    if (!live) listener.end();
    else listener.cursor = Math.max(after ?? 0, head);
  }

  /** Sends `events` past the listener's cursor that it follows; ends a task's stream at its end. */
  private deliver(listener: Listener, events: StreamEvent[], upTo: number): void {
    for (const event of events) {
      if (event.seq <= listener.cursor) continue;
      listener.cursor = event.seq;
      if (!matches(listener.filter, event)) continue;
      listener.send(event);
      if (listener.filter.task_id !== null && TERMINAL_EVENTS.has(event.event_type)) {
        listener.end();
        return;
      }
    }
    listener.cursor = Math.max(listener.cursor, upTo);
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

  private socketListener(socket: WebSocket, state: SocketState): Listener {
    const listener: Listener = {
      filter: state.filter,
      cursor: state.cursor,
      ended: state.ended,
      ping: () => undefined,
      send: (event) => {
        try {
          socket.send(socketMessage(event));
        } catch {
          listener.ended = true;
        }
      },
      end: () => {
        listener.ended = true;
        try {
          socket.close(1000, "task ended");
        } catch {
          // Already closed by the client.
        }
      },
    };
    return listener;
  }

  private saveSocket(socket: WebSocket, listener: Listener): void {
    const state: SocketState = { filter: listener.filter, cursor: listener.cursor, ended: listener.ended };
    try {
      socket.serializeAttachment(state);
    } catch {
      // The socket is gone; nothing to keep.
    }
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

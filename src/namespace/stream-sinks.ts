/** What a stream follows: one task, or the namespace's task events narrowed by type and status. */
export interface StreamFilter {
  task_id: string | null;
  task_types: string[] | null;
  statuses: string[] | null;
}

/** A stored event as streams read it. */
export type StreamEvent = {
  seq: number;
  event_type: string;
  task_id: string;
  data: string;
  task_type: string;
  status: string;
};

/** Why a stream ends from the server's side. */
export type EndReason = "task_ended" | "key_revoked";

/** Where a stream stands; a WebSocket keeps it in its attachment, so it survives hibernation. */
export interface StreamState {
  filter: StreamFilter;
  cursor: number;
  ended: boolean;
  /** The API key the stream was opened with: revoking that key ends it. Null on sockets from before. */
  key_id: string | null;
  /**
   * Set while a task's stream still replays the task's history (through the task index, a page
   * per turn); `live` tells whether the stream goes on after the replay or ends with it.
   */
  replay: { live: boolean } | null;
}

/** One open stream: its state and how it receives events. */
export interface Listener extends StreamState {
  /** Bytes it may still be sent in this turn: a long backlog goes out a page per turn. */
  budget: number;
  /** Sends one event; returns the bytes sent, or null when the stream was cut off instead. */
  send(event: StreamEvent): number | null;
  end(reason: EndReason): void;
  /** A keep-alive comment, for streams that need one. */
  ping(): void;
}

/**
 * Unsent bytes an SSE stream may hold. A reader this far behind is cut off and resumes with
 * Last-Event-ID (SPEC §10); the events stay in storage, so nothing is lost.
 */
export const MAX_UNSENT_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

/** `id:`, `event:` and `data:` of one Server-Sent Event; the body is one line of JSON. */
const sseMessage = (event: StreamEvent): string => `id: ${event.seq}\nevent: ${event.event_type}\ndata: ${event.data}\n\n`;

/** A WebSocket frame: the same three fields as JSON. */
const socketMessage = (event: StreamEvent): string =>
  `{"id":"${event.seq}","event":${JSON.stringify(event.event_type)},"data":${event.data}}`;

/** Counts what sits in an SSE stream's queue in bytes, so its desired size is minus its unsent bytes. */
export const unsentBytesStrategy: QueuingStrategy<Uint8Array> = { highWaterMark: 0, size: (chunk) => chunk.byteLength };

/**
 * A Server-Sent Events listener writing into `controller`, whose stream counts bytes with
 * `unsentBytesStrategy`. An event that would take the unsent bytes past MAX_UNSENT_BYTES cuts
 * the stream instead, after what is queued: the reader gets a gapless prefix and resumes. An
 * event alone in the queue always goes, so a reader that keeps up is never cut by a large one.
 */
export function sseListener(state: StreamState, controller: ReadableStreamDefaultController<Uint8Array>, onEnd: () => void): Listener {
  const close = (): void => {
    if (listener.ended) return;
    listener.ended = true;
    onEnd();
    try {
      controller.close();
    } catch {
      // The reader cancelled; nothing to close.
    }
  };
  const push = (text: string): number | null => {
    if (listener.ended) return null;
    const bytes = encoder.encode(text);
    const unsent = -(controller.desiredSize ?? 0);
    if (unsent > 0 && unsent + bytes.byteLength > MAX_UNSENT_BYTES) {
      close();
      return null;
    }
    controller.enqueue(bytes);
    return bytes.byteLength;
  };
  const listener: Listener = {
    ...state,
    budget: 0,
    send: (event) => push(sseMessage(event)),
    ping: () => void push(": keep-alive\n\n"),
    end: (reason) => {
      if (reason === "key_revoked") push(": the API key of this stream was revoked\n\n");
      close();
    },
  };
  push(": connected\n\n");
  return listener;
}

/**
 * A WebSocket listener. The runtime tells nothing of a socket's unsent bytes (no
 * bufferedAmount), so a socket is never cut; its backlog is paged across turns instead.
 */
export function socketListener(socket: WebSocket, state: StreamState): Listener {
  const close = (code: number, reason: string): void => {
    listener.ended = true;
    try {
      socket.close(code, reason);
    } catch {
      // Already closed by the client.
    }
  };
  const listener: Listener = {
    ...state,
    budget: 0,
    ping: () => undefined,
    send: (event) => {
      const text = socketMessage(event);
      try {
        socket.send(text);
        return text.length;
      } catch {
        listener.ended = true;
        return null;
      }
    },
    // 1008 (policy violation): the client must not reconnect with the same key.
    end: (reason) => (reason === "key_revoked" ? close(1008, "API key revoked") : close(1000, "task ended")),
  };
  return listener;
}

/** The part of a listener a socket's attachment keeps. */
export const stateOf = (listener: StreamState): StreamState => ({
  filter: listener.filter,
  cursor: listener.cursor,
  ended: listener.ended,
  key_id: listener.key_id,
  replay: listener.replay,
});

/** A socket's saved state, or null when it has none; sockets from before keys were kept read as keyless. */
export function readSocketState(socket: WebSocket): StreamState | null {
  const saved = socket.deserializeAttachment() as Partial<StreamState> | null;
  if (!saved || !saved.filter || typeof saved.cursor !== "number") return null;
  return { filter: saved.filter, cursor: saved.cursor, ended: saved.ended === true, key_id: saved.key_id ?? null, replay: saved.replay ?? null };
}

export function saveSocketState(socket: WebSocket, state: StreamState): void {
  try {
    socket.serializeAttachment(stateOf(state));
  } catch {
    // The socket is gone; nothing to keep.
  }
}

/** One message of a `text/event-stream` (the WHATWG "dispatch the event" step). */
export interface SseMessage {
  /** The last `id:` seen on the stream so far (it carries over to messages without one). */
  id: string | undefined;
  event: string;
  data: string;
  /** A `retry:` field: the server's reconnection delay in milliseconds. */
  retry: number | undefined;
}

/**
 * Parses a text/event-stream incrementally, following the WHATWG rules: lines end with CRLF,
 * LF or CR (a CR at the end of one chunk may pair with an LF at the start of the next);
 * comments (`: keep-alive`) are skipped; `data:` lines join with "\n"; a message without data
 * is not dispatched; an `id` containing NUL is ignored.
 */
export class SseParser {
  private buffer = "";
  private pendingCR = false;
  private data: string[] = [];
  private event = "";
  private retry: number | undefined;
  private lastId: string | undefined;

  constructor(lastEventId?: string) {
    this.lastId = lastEventId;
    this.resumeId = lastEventId;
  }

  /** Feeds decoded text; returns every message it completed. */
  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    let chunk = text;
    if (this.pendingCR && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.pendingCR = false;
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A trailing lone CR may be the first half of a CRLF split across chunks.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) this.pendingCR = true;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private resumeId: string | undefined;

  /** The id to resume from: the last `id:` of a completed block (also one without data). */
  get lastEventId(): string | undefined {
    return this.resumeId;
  }

  private line(line: string): SseMessage | undefined {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
    return undefined;
  }

  private dispatch(): SseMessage | undefined {
    this.resumeId = this.lastId;
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = "";
    if (data.length === 0) return undefined;
    return { id: this.lastId, event: event || "message", data: data.join("\n"), retry: this.retry };
  }
}

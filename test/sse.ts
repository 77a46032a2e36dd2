import { exports } from "cloudflare:workers";
import { ORIGIN, sleep } from "./helpers";

export interface SseMessage {
  id: number;
  event: string;
  data: any;
}

/**
 * A Server-Sent Events reader over the Worker's real fetch: it parses messages as they arrive
 * and keeps comments apart, so tests can wait for what they expect and see the keep-alives.
 */
export class SseReader {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  /** Ids of blocks without data: where the stream says it starts. */
  readonly startIds: number[] = [];
  ended = false;
  private buffer = "";
  private readonly reading: Promise<void>;

  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
  ) {
    this.reading = this.read();
  }

  static async open(path: string, token: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const response = await exports.default.fetch(new Request(`${ORIGIN}${path}`, { headers: { Authorization: `Bearer ${token}`, ...headers } }));
    if (response.status !== 200 || !response.body) throw new Error(`stream ${path} answered ${response.status}: ${await response.text()}`);
    return new SseReader(response, response.body.getReader());
  }

  private async read(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) break;
        this.buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = this.buffer.indexOf("\n\n")) >= 0) {
          const block = this.buffer.slice(0, end);
          this.buffer = this.buffer.slice(end + 2);
          this.parse(block);
        }
      }
    } catch {
      // The stream broke (a Durable Object restart, or close()).
    }
    this.ended = true;
  }

  private parse(block: string): void {
    const fields: Record<string, string> = {};
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        this.comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(":");
      fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
    }
    if (fields.data === undefined && fields.id !== undefined) this.startIds.push(Number(fields.id));
    if (fields.data !== undefined) this.messages.push({ id: Number(fields.id), event: fields.event ?? "message", data: JSON.parse(fields.data) });
  }

  /** Waits until `count` messages have arrived (or the stream ended) and returns them all. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<SseMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count && !this.ended) {
      if (Date.now() > deadline) throw new Error(`waited for ${count} events, got ${this.messages.length}: ${this.messages.map((m) => m.event).join(", ")}`);
      await sleep(10);
    }
    return this.messages;
  }

  async waitForEnd(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error("the stream did not end");
      await sleep(10);
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
    await this.reading;
  }
}

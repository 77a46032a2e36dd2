import { ApiError, EdgeTasksError, NetworkError } from "./errors.js";
import { apiErrorOf, backoffMs, isAbort, isRecord, isRetryableStatus, seg, sleep } from "./http.js";
import type { ClientPort } from "./port.js";
import { SseParser } from "./sse.js";
import { type EventFilters, isTerminalStatus, type TaskEvent, type TaskEventType } from "./types.js";

export interface EventsOptions {
  /** Resume after this sequence number (an event's `seq`): every later event is replayed first. */
  lastEventId?: string;
  signal?: AbortSignal;
  /**
   * Consecutive failed connections (refused, dropped before any event, 429/5xx) after which the
   * iterator throws. Default: never give up. A connection that delivered an event resets it.
   */
  maxFailures?: number;
  /**
   * A connection that sends nothing, not even the server's keep-alive comment (every 15 s), for
   * this long is taken for dead and reopened. Default 45 s.
   */
  idleTimeoutMs?: number;
}

const EVENT_TYPES: readonly string[] = ["task.created", "task.queued", "task.processing", "task.progress", "task.completed", "task.failed", "task.cancelled"];
const TERMINAL_EVENTS: readonly string[] = ["task.completed", "task.failed", "task.cancelled"];

/** A stream message's event, or undefined when it is not a task event. */
function toEvent(seq: string | undefined, type: string, data: string): TaskEvent | undefined {
  if (!EVENT_TYPES.includes(type) || seq === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    throw new EdgeTasksError(`event ${seq} carries data that is not JSON`);
  }
  if (!isRecord(body) || !isRecord(body.data) || !isRecord(body.data.task) || typeof body.data.task.task_id !== "string") {
    throw new EdgeTasksError(`event ${seq} carries no task`);
  }
  return { ...(body as unknown as Omit<TaskEvent, "seq" | "type">), type: type as TaskEventType, seq };
}

/** Links `parent` to a new controller; `unlink` undoes it. */
function linked(parent?: AbortSignal): { controller: AbortController; unlink: () => void } {
  const controller = new AbortController();
  if (!parent) return { controller, unlink: () => {} };
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener("abort", onAbort, { once: true });
  return { controller, unlink: () => parent.removeEventListener("abort", onAbort) };
}

/**
 * Reads Server-Sent Events from `fetch`, reconnecting after a dropped connection with the last
 * seen id in `Last-Event-ID`. A task's stream ends after its terminal event; when a task
 * stream closes with no event at all, the task is looked up, and an ended task ends the
 * iterator (its events may have expired).
 */
export async function* openEvents(client: ClientPort, target: string | EventFilters, options: EventsOptions): AsyncGenerator<TaskEvent> {
  const taskId = typeof target === "string" ? target : undefined;
  const url =
    typeof target === "string"
      ? client.url(`/v1/tasks/${seg(target)}/events`)
      : client.url("/v1/events", { task_type: target.task_type, status: target.status });
  const maxFailures = options.maxFailures ?? Number.POSITIVE_INFINITY;
  let lastId = options.lastEventId;
  let failures = 0;
  let serverRetryMs: number | undefined;
  const idleMs = options.idleTimeoutMs ?? 45_000;

  for (;;) {
    if (options.signal?.aborted) throw options.signal.reason;
    const { controller, unlink } = linked(options.signal);
    let received = 0;
    let failure: unknown;
    let idle: ReturnType<typeof setTimeout> | undefined;
    /** Awaits `step`, ending the connection if it takes longer than the idle timeout. */
    const watched = async <T>(step: Promise<T>): Promise<T> => {
      idle = setTimeout(() => controller.abort(new NetworkError(`${url}: nothing received for ${idleMs} ms`)), idleMs);
      try {
        return await step;
      } finally {
        clearTimeout(idle);
      }
    };
    try {
      const headers = client.headers({ Accept: "text/event-stream" });
      if (lastId !== undefined) headers.set("Last-Event-ID", lastId);
      const response = await watched(client.fetch(url, { headers, signal: controller.signal }));
      if (!response.ok) {
        const error = await apiErrorOf(response);
        if (!isRetryableStatus(response.status)) throw error;
        failure = error;
      } else if (!(response.headers.get("Content-Type") ?? "").includes("text/event-stream") || !response.body) {
        await response.body?.cancel();
        throw new EdgeTasksError(`${url} did not answer with an event stream`);
      } else {
        const parser = new SseParser(lastId);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        // Not every fetch ends a body already received when its signal aborts: end it here too.
        controller.signal.addEventListener("abort", () => void reader.cancel(controller.signal.reason).catch(() => {}), { once: true });
        for (;;) {
          const { done, value } = await watched(reader.read());
          if (controller.signal.aborted) throw controller.signal.reason;
          if (done) break;
          for (const message of parser.push(value)) {
            if (message.retry !== undefined) serverRetryMs = message.retry;
            lastId = message.id ?? lastId;
            const event = toEvent(message.id, message.event, message.data);
            if (!event) continue;
            received++;
            failures = 0;
            yield event;
            if (taskId !== undefined && TERMINAL_EVENTS.includes(event.type)) return;
          }
          // Blocks without data count too: a namespace stream opens with the id it starts from.
          lastId = parser.lastEventId ?? lastId;
        }
      }
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (controller.signal.aborted) {
        // Our own idle watchdog ended the connection: reopen it.
        failure = controller.signal.reason;
      } else if (err instanceof EdgeTasksError || isAbort(err)) {
        throw err;
      } else {
        failure = err;
      }
    } finally {
      clearTimeout(idle);
      unlink();
      // Ends the request when the consumer stops early or the connection is abandoned.
      controller.abort();
    }

    if (received === 0) failures++;
    if (taskId !== undefined && received === 0 && failure === undefined) {
      // A clean close without an event: an ended task whose events are gone ends the stream.
      const task = await client.getTask(taskId, { signal: options.signal });
      if (isTerminalStatus(task.status)) return;
    }
    if (failures > maxFailures) {
      if (failure instanceof ApiError) throw failure;
      throw new NetworkError(`${url}: the event stream failed ${failures} times in a row`, { cause: failure });
    }
    const delay = failures === 0 ? (serverRetryMs ?? 0) : Math.max(serverRetryMs ?? 0, failure instanceof ApiError && failure.retryAfterMs !== undefined ? failure.retryAfterMs : backoffMs(client.retry, failures - 1));
    await sleep(delay, options.signal);
  }
}

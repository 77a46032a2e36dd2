import { ApiError, TaskCancelledError, TaskFailedError, TaskTimeoutError } from "./errors.js";
import { openEvents } from "./events.js";
import { backoffMs, isRetryableStatus, sleep } from "./http.js";
import type { ClientPort, VersionedTask } from "./port.js";
import { isTerminalStatus, type Task } from "./types.js";

export interface WaitOptions {
  /** Give up after this long with `TaskTimeoutError`; the task is left running. Default: no limit. */
  timeoutMs?: number;
  /** Aborting it rejects with the signal's reason; the task is left running. */
  signal?: AbortSignal;
  /** Called with the task on every change seen before it ends (status or progress). */
  onProgress?: (task: Task) => void;
  /** A stream silent this long (no event, no keep-alive) is reopened. Default 45 s. */
  streamIdleTimeoutMs?: number;
  /** Long-poll fallback: the longest wait between polls when the server does not hold requests. Default 5 s. */
  maxPollIntervalMs?: number;
}

const TIMEOUT = Symbol("edge-tasks wait timeout");
/** How long one long-poll may be held by the server, in seconds (SPEC §10 allows ≤ 60). */
const LONG_POLL_SECONDS = 25;
/** Consecutive stream failures after which waiting falls back to long-polling. */
const STREAM_FAILURES = 2;

const RANK: Record<Task["status"], number> = { created: 0, queued: 1, processing: 2, completed: 3, failed: 3, cancelled: 3 };

/**
 * Whether `a` is an earlier state than `b`: by updated_at, and within one millisecond (a task
 * admitted as it is created) by how far along the status is.
 */
const isOlder = (a: Task, b: Task): boolean => a.updated_at < b.updated_at || (a.updated_at === b.updated_at && RANK[a.status] < RANK[b.status]);

function settle(task: Task): Task {
  if (task.status === "failed") throw new TaskFailedError(task);
  if (task.status === "cancelled") throw new TaskCancelledError(task);
  return task;
}

export async function waitForTask(client: ClientPort, taskId: string, options: WaitOptions): Promise<Task> {
  const controller = new AbortController();
  const signal = controller.signal;
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) throw options.signal.reason;
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(TIMEOUT), options.timeoutMs);

  let latest: Task | null = null;
  /** Records a state; returns it when terminal. Replayed states older than the latest are skipped. */
  const observe = (task: Task): Task | undefined => {
    if (isTerminalStatus(task.status)) {
      latest = task;
      return task;
    }
    if (latest && isOlder(task, latest)) return undefined;
    const changed = !latest || latest.updated_at !== task.updated_at || latest.status !== task.status || JSON.stringify(latest.progress) !== JSON.stringify(task.progress);
    latest = task;
    if (changed) options.onProgress?.(task);
    return undefined;
  };

  try {
    const initial = await client.getTaskVersioned(taskId, { signal });
    const first = observe(initial.task);
    if (first) return settle(first);

    // The whole history of the task is replayed from seq 0, so nothing between the GET above and
    // the stream's start is missed.
    let ended: Task | undefined;
    try {
      for await (const event of openEvents(client, taskId, { lastEventId: "0", signal, maxFailures: STREAM_FAILURES, idleTimeoutMs: options.streamIdleTimeoutMs })) {
        ended = observe(event.data.task);
        if (ended) break;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      // A task that is gone, or credentials refused, will not come right by polling.
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) throw err;
      // Any other stream failure: fall back to long-polling below.
    }
    if (ended) return settle(ended);

    // Polls from the first state's ETag: a change made after the GET answers the first poll at once.
    let etag: string | null = initial.etag;
    let failures = 0;
    let idle = 0;
    for (;;) {
      const started = Date.now();
      const before = latest as Task | null;
      let answer: VersionedTask;
      try {
        answer = await client.getTaskVersioned(taskId, { wait: LONG_POLL_SECONDS, ifNoneMatch: etag, signal });
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof ApiError && !isRetryableStatus(err.status)) throw err;
        await sleep(backoffMs(client.retry, Math.min(failures++, 10)), signal);
        continue;
      }
      failures = 0;
      etag = answer.etag;
      const done = observe(answer.task);
      if (done) return settle(done);
      // A server that does not hold the request answers at once: then poll with backoff.
      if (before === null || before.updated_at !== answer.task.updated_at) idle = 0;
      else if (Date.now() - started < 1000) {
        await sleep(backoffMs({ baseDelayMs: 250, maxDelayMs: options.maxPollIntervalMs ?? 5000 }, Math.min(idle++, 10)), signal);
      }
    }
  } catch (err) {
    if (signal.aborted && signal.reason === TIMEOUT) throw new TaskTimeoutError(taskId, options.timeoutMs ?? 0, latest);
    throw err;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    controller.abort();
  }
}

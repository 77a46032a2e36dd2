import { sleep } from "./http.js";
import type { ClientPort } from "./port.js";
import { isTerminalStatus, type LogLine } from "./types.js";

export interface LogLinesOptions {
  /** Keep waiting for new lines until the task has ended. Default false: the lines there are now. */
  follow?: boolean;
  signal?: AbortSignal;
  /** In follow mode, how often to look for new lines at most. Default 1 s. */
  pollIntervalMs?: number;
  /** Lines a request (1–100). Default 100. */
  pageSize?: number;
}

/**
 * Walks a task's log, oldest first. The server gives a cursor only after a full page, so the
 * walk remembers the last cursor and how many lines past it it has already given out, and
 * re-reads from there. In follow mode the task's state is read before each pass: once a pass
 * that began with the task ended is drained, every line is out and the walk ends.
 */
export async function* followLogs(client: ClientPort, taskId: string, options: LogLinesOptions): AsyncGenerator<LogLine> {
  const { signal, follow = false } = options;
  const pageSize = options.pageSize ?? 100;
  const interval = options.pollIntervalMs ?? 1000;
  let cursor: string | undefined;
  let skip = 0;
  let state = follow ? await client.getTaskVersioned(taskId, { signal }) : undefined;
  for (;;) {
    for (;;) {
      const page = await client.logs(taskId, { limit: pageSize, cursor, signal });
      yield* page.results.slice(skip);
      if (page.pagination.next_cursor) {
        cursor = page.pagination.next_cursor;
        skip = 0;
      } else {
        skip = Math.max(skip, page.results.length);
        break;
      }
    }
    if (!state || isTerminalStatus(state.task.status)) return;
    // A long-poll wakes the walk as soon as the task moves; log lines alone do not move it, so
    // the wait is short.
    const started = Date.now();
    state = await client.getTaskVersioned(taskId, { wait: Math.max(1, Math.round(interval / 1000)), ifNoneMatch: state.etag, signal });
    const elapsed = Date.now() - started;
    if (elapsed < interval && !isTerminalStatus(state.task.status)) await sleep(interval - elapsed, signal);
  }
}

import { EdgeTasksError } from "./errors.js";
import { backoffMs, isRecord, seg, sleep } from "./http.js";
import type { Task, TaskProgress } from "./types.js";

/** What a pull worker's handler sees of the task it runs. */
export interface WorkContext {
  task: Task;
  attempt: number;
  /** Aborts when the attempt has ended (cancelled, timed out, lease lost) or the worker stops. */
  signal: AbortSignal;
  /** Reports progress; sent with the next batch, which also renews the lease. */
  progress(progress: Partial<{ [K in keyof TaskProgress]: NonNullable<TaskProgress[K]> }>): void;
  /** Adds a line to the task's log, sent with the next batch. */
  log(message: string, level?: "debug" | "info" | "warn" | "error"): void;
}

/**
 * Runs one task: its return value becomes the outputs. A throw fails the attempt, retried
 * unless the error carries `retryable: false`; its `code` (a string), else "handler_error".
 */
export type WorkHandler = (ctx: WorkContext) => Promise<Record<string, unknown> | void>;

export interface WorkOptions {
  /** Tasks run at once. Default 10. */
  concurrency?: number;
  /** Stops the worker: no more leases; running handlers are aborted, and it resolves once every report is sent. */
  signal?: AbortSignal;
  /** How long one lease call waits for work (0–60 s). Default 20. */
  waitSeconds?: number;
}

interface LeaseBody {
  task: Task;
  attempt: number;
  lease_expires_at: string;
  callback: { url: string; token: string };
}

interface Report {
  token: string;
  type: "progress" | "logs" | "complete" | "fail";
  [field: string]: unknown;
}

/** One leased attempt while its handler runs and until its final report is sent. */
interface Running {
  token: string;
  leaseMs: number;
  leaseExpiresAt: number;
  controller: AbortController;
  progress: Record<string, unknown> | null;
  lines: { level: string; message: string }[];
  final: Report | null;
  ended: boolean;
}

const MAX_REPORTS = 100;
const MAX_LINES = 100;

/**
 * A pull worker (SPEC §6 pull mode): leases tasks of `taskType` up to `concurrency` at a time,
 * runs `handler` on each, and sends their progress, logs and results in batches through
 * `POST /v1/callbacks`, renewing each lease with a progress report before half of it is gone.
 */
export async function work(client: WorkClient, taskType: string, handler: WorkHandler, options: WorkOptions = {}): Promise<void> {
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 10));
  const waitSeconds = Math.max(0, Math.min(60, Math.round(options.waitSeconds ?? 20)));
  const stop = options.signal;
  const running = new Map<string, Running>();
  const handlers = new Set<Promise<void>>();
  let wakeFlusher: () => void = () => undefined;
  let slotFreed: () => void = () => undefined;

  const schedule = () => wakeFlusher();

  /** Takes every pending report, each task's lines first, then its progress, then its result. */
  const takeReports = (): Report[] => {
    const reports: Report[] = [];
    for (const run of running.values()) {
      while (run.lines.length > 0) reports.push({ token: run.token, type: "logs", lines: run.lines.splice(0, MAX_LINES) });
      if (run.progress) reports.push({ token: run.token, type: "progress", ...run.progress });
      run.progress = null;
      if (run.final) reports.push(run.final);
      run.final = null;
    }
    return reports;
  };

  const settle = (taskId: string, run: Running, result: unknown) => {
    if (!isRecord(result)) return;
    if (result.status === 200) {
      if (typeof result.lease_expires_at === "string") run.leaseExpiresAt = Date.parse(result.lease_expires_at);
      return;
    }
    // 401/409: the attempt has ended (cancelled, timed out, lease lost); its handler stops.
    run.ended = true;
    run.controller.abort(new EdgeTasksError(`task ${taskId}: ${isRecord(result.error) ? String(result.error.message) : "attempt ended"}`));
  };

  /** Sends the pending reports, at most one request at a time, until none is left and the worker has stopped. */
  const flusher = (async () => {
    let failures = 0;
    for (;;) {
      const reports = takeReports();
      if (reports.length === 0) {
        for (const [taskId, run] of running) if (run.ended && run.final === null && run.lines.length === 0) running.delete(taskId);
        if ((stop?.aborted ?? false) && handlers.size === 0) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => wakeFlusher(), renewalCheckMs(running));
          wakeFlusher = () => {
            clearTimeout(timer);
            wakeFlusher = () => undefined;
            resolve();
          };
        });
        renewDue(running);
        continue;
      }
      for (let i = 0; i < reports.length; i += MAX_REPORTS) {
        const chunk = reports.slice(i, i + MAX_REPORTS);
        try {
          const answer = await client.request("POST", "/v1/callbacks", { body: { reports: chunk } });
          const results = isRecord(answer) && Array.isArray(answer.results) ? answer.results : [];
          chunk.forEach((report, n) => {
            for (const [taskId, run] of running) if (run.token === report.token) settle(taskId, run, results[n]);
          });
          failures = 0;
        } catch (err) {
          // Results and progress are sent again (a repeated result gets 409, harmlessly); lines are
          // not, since the failed request may have stored them.
          for (const report of chunk) {
            const run = [...running.values()].find((r) => r.token === report.token);
            if (run && (report.type === "complete" || report.type === "fail") && run.final === null) run.final = report;
          }
          console.error(`edge-tasks worker: sending ${chunk.length} reports failed`, err);
          await sleep(backoffMs({ baseDelayMs: 500, maxDelayMs: 10_000 }, failures++)).catch(() => undefined);
        }
      }
    }
  })();

  const run = (lease: LeaseBody) => {
    const controller = new AbortController();
    const onStop = () => controller.abort(stop?.reason);
    stop?.addEventListener("abort", onStop, { once: true });
    if (stop?.aborted) onStop();
    const expiresAt = Date.parse(lease.lease_expires_at);
    const state: Running = {
      token: lease.callback.token,
      leaseMs: Math.max(1000, expiresAt - Date.now()),
      leaseExpiresAt: expiresAt,
      controller,
      progress: null,
      lines: [],
      final: null,
      ended: false,
    };
    running.set(lease.task.task_id, state);
    // The flusher's next wait must be short enough to renew this lease in time.
    schedule();
    const ctx: WorkContext = {
      task: lease.task,
      attempt: lease.attempt,
      signal: controller.signal,
      progress: (progress) => {
        state.progress = { ...state.progress, ...progress };
        schedule();
      },
      log: (message, level = "info") => {
        state.lines.push({ level, message });
        schedule();
      },
    };
    // Started on the next microtask, so that `done` is assigned before the handler can end.
    const done: Promise<void> = Promise.resolve().then(async () => {
      try {
        const outputs = await handler(ctx);
        if (!state.ended) state.final = { token: state.token, type: "complete", outputs: isRecord(outputs) ? outputs : {} };
      } catch (err) {
        if (!state.ended) state.final = { token: state.token, type: "fail", ...failureOf(err, controller.signal) };
      } finally {
        state.ended = true;
        stop?.removeEventListener("abort", onStop);
        handlers.delete(done);
        schedule();
        slotFreed();
      }
    });
    handlers.add(done);
  };

  let failures = 0;
  while (!(stop?.aborted ?? false)) {
    const free = concurrency - handlers.size;
    if (free <= 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stop?.removeEventListener("abort", done);
          slotFreed = () => undefined;
          resolve();
        };
        slotFreed = done;
        stop?.addEventListener("abort", done, { once: true });
      });
      continue;
    }
    try {
      const answer = await client.request("POST", `/v1/processors/${seg(taskType)}/lease`, {
        body: { max_tasks: Math.min(free, MAX_REPORTS), wait_seconds: waitSeconds },
        signal: stop,
      });
      const leases = isRecord(answer) && Array.isArray(answer.leases) ? (answer.leases as LeaseBody[]) : [];
      for (const lease of leases) run(lease);
      failures = 0;
    } catch (err) {
      if (stop?.aborted) break;
      console.error(`edge-tasks worker: leasing ${taskType} failed`, err);
      await sleep(backoffMs({ baseDelayMs: 500, maxDelayMs: 30_000 }, failures++), stop).catch(() => undefined);
    }
  }
  await Promise.all([...handlers]);
  schedule();
  await flusher;
}

/** The part of the client a worker uses. */
export interface WorkClient {
  request(method: string, path: string, options?: { body?: unknown; signal?: AbortSignal }): Promise<unknown>;
}

/** How a thrown error fails the attempt. */
function failureOf(err: unknown, signal: AbortSignal): { error: { code: string; message: string }; retryable: boolean } {
  const record = isRecord(err) ? err : {};
  const code = typeof record.code === "string" && record.code.length > 0 ? record.code.slice(0, 64) : signal.aborted ? "worker_stopped" : "handler_error";
  const message = (err instanceof Error ? err.message : String(err)).slice(0, 1000) || code;
  return { error: { code, message }, retryable: record.retryable !== false };
}

/** Leases more than half gone get an empty progress report, which renews them. */
function renewDue(running: Map<string, Running>): void {
  const now = Date.now();
  for (const run of running.values()) {
    if (run.ended || run.progress !== null) continue;
    if (run.leaseExpiresAt - now < run.leaseMs / 2) run.progress = {};
  }
}

/** How often leases are checked: often enough to renew the shortest one in time. */
function renewalCheckMs(running: Map<string, Running>): number {
  let shortest = 10_000;
  for (const run of running.values()) if (!run.ended) shortest = Math.min(shortest, run.leaseMs / 4);
  return Math.max(250, shortest);
}

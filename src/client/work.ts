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
  /**
   * Report calls (`POST /v1/callbacks`) out at once (1–8). Default 2: a call is mostly waiting on
   * the network, so a second one sends while the first is out. An attempt's reports stay in
   * order: while one of its reports is out, its later ones wait for that call's answer.
   */
  reportCalls?: number;
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
  /** A report call carrying reports of this attempt is out: its later reports wait for the answer. */
  sending: boolean;
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
  const reportCalls = Math.max(1, Math.min(8, Math.floor(options.reportCalls ?? 2)));
  const running = new Map<string, Running>();
  const handlers = new Set<Promise<void>>();
  /** Flushers asleep, waiting for reports to send, an answer, or a lease to check. */
  const flusherWakes = new Set<() => void>();
  let slotFreed: () => void = () => undefined;

  const schedule = () => {
    for (const wake of [...flusherWakes]) wake();
  };

  /**
   * Takes up to MAX_REPORTS pending reports of attempts with no report call out, each attempt's
   * lines first, then its progress, then its result, and marks those attempts as sending.
   */
  const takeReports = (): { taskId: string; run: Running; report: Report }[] => {
    const taken: { taskId: string; run: Running; report: Report }[] = [];
    for (const [taskId, run] of running) {
      if (taken.length >= MAX_REPORTS) break;
      if (run.sending) continue;
      const before = taken.length;
      const take = (report: Report) => taken.push({ taskId, run, report });
      while (run.lines.length > 0 && taken.length < MAX_REPORTS) take({ token: run.token, type: "logs", lines: run.lines.splice(0, MAX_LINES) });
      // What is left of this attempt waits for the next call, behind the lines taken now.
      if (run.lines.length === 0 && run.progress && taken.length < MAX_REPORTS) {
        take({ token: run.token, type: "progress", ...run.progress });
        run.progress = null;
      }
      if (run.lines.length === 0 && run.progress === null && run.final && taken.length < MAX_REPORTS) {
        take(run.final);
        run.final = null;
      }
      if (taken.length > before) run.sending = true;
    }
    return taken;
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

  /** Whether every report is sent and answered, and nothing more can come. */
  const finished = () => (stop?.aborted ?? false) && handlers.size === 0 && [...running.values()].every((r) => !r.sending && r.final === null && r.progress === null && r.lines.length === 0);

  /**
   * One of `reportCalls` senders: sends pending reports, a call at a time, until the worker has
   * stopped and every report is answered.
   */
  const flusher = async () => {
    let failures = 0;
    for (;;) {
      const taken = takeReports();
      if (taken.length === 0) {
        for (const [taskId, run] of running) if (run.ended && !run.sending && run.final === null && run.lines.length === 0) running.delete(taskId);
        if (finished()) {
          schedule();
          return;
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            flusherWakes.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, renewalCheckMs(running));
          flusherWakes.add(wake);
        });
        renewDue(running);
        continue;
      }
      const reports = taken.map((t) => t.report);
      try {
        const answer = await client.request("POST", "/v1/callbacks", { body: { reports } });
        const results = isRecord(answer) && Array.isArray(answer.results) ? answer.results : [];
        taken.forEach(({ taskId, run }, n) => settle(taskId, run, results[n]));
        failures = 0;
      } catch (err) {
        // Results and progress are sent again (a repeated result gets 409, harmlessly); lines are
        // not, since the failed request may have stored them.
        for (const { run, report } of taken) {
          if ((report.type === "complete" || report.type === "fail") && run.final === null) run.final = report;
        }
        console.error(`edge-tasks worker: sending ${reports.length} reports failed`, err);
        await sleep(backoffMs({ baseDelayMs: 500, maxDelayMs: 10_000 }, failures++)).catch(() => undefined);
      } finally {
        for (const { run } of taken) run.sending = false;
        // Reports held behind this call may go now; a sleeping flusher may be the one to end.
        schedule();
      }
    }
  };
  const flushers = Promise.all(Array.from({ length: reportCalls }, flusher));

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
      sending: false,
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
  await flushers;
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

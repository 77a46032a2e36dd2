import type { Stats, Task } from "../../client/types.js";

/*
 * What the charts draw, gathered from the event stream since the page opened (or the filters
 * last changed): transitions per minute, failures by error code, and the namespace's slots in
 * use and queue against its limit, sampled from /v1/tasks/stats each time events arrive (the
 * counts change only through transitions, so between samples they are flat).
 */

export const MINUTE_MS = 60_000;
/** The charts' time window. */
export const WINDOW_MINUTES = 30;

export interface Throughput {
  created: number;
  completed: number;
  failed: number;
}

export interface DepthSample {
  at: number;
  /** queued + processing: the slots in use. */
  active: number;
  /** created: the tasks waiting for a slot. */
  waiting: number;
  limit: number;
}

const COUNTED: Record<string, keyof Throughput | undefined> = { "task.created": "created", "task.completed": "completed", "task.failed": "failed" };

export const metrics = {
  /** When the page began gathering: the charts start here. */
  since: Date.now(),
  /** Minute number (ms since the epoch / 60 000) → transitions in that minute. */
  perMinute: new Map<number, Throughput>(),
  depth: [] as DepthSample[],
  /** error.code → failed tasks. */
  failures: new Map<string, number>(),
};

export function resetMetrics(now = Date.now()): void {
  metrics.since = now;
  metrics.perMinute.clear();
  metrics.depth = [];
  metrics.failures.clear();
}

/** Counts one task event, at the time the service emitted it. */
export function countEvent(type: string, task: Task, at: number): void {
  const kind = COUNTED[type];
  if (!kind) return;
  const minute = Math.floor(at / MINUTE_MS);
  const bucket = metrics.perMinute.get(minute) ?? { created: 0, completed: 0, failed: 0 };
  bucket[kind]++;
  metrics.perMinute.set(minute, bucket);
  if (kind === "failed") {
    const code = task.error?.code ?? "unknown";
    metrics.failures.set(code, (metrics.failures.get(code) ?? 0) + 1);
  }
  prune(at);
}

/** Takes a stats answer as a sample of the namespace's queue depth. */
export function sampleDepth(stats: Stats, at = Date.now()): void {
  const sample = { at, active: stats.queued + stats.processing, waiting: stats.created, limit: stats.max_concurrent_tasks };
  const last = metrics.depth.at(-1);
  if (last && last.active === sample.active && last.waiting === sample.waiting && last.limit === sample.limit) return;
  metrics.depth.push(sample);
  prune(at);
}

/** Drops what fell out of the window; the last depth sample before it still gives its start. */
function prune(now: number): void {
  const firstMinute = Math.floor(now / MINUTE_MS) - WINDOW_MINUTES + 1;
  for (const minute of metrics.perMinute.keys()) if (minute < firstMinute) metrics.perMinute.delete(minute);
  const start = now - WINDOW_MINUTES * MINUTE_MS;
  while (metrics.depth.length > 1 && (metrics.depth[1]?.at ?? now) <= start) metrics.depth.shift();
}

/** The throughput of each minute of the window, oldest first, the current minute last. */
export function throughputSeries(now: number): Throughput[] {
  const current = Math.floor(now / MINUTE_MS);
  const series: Throughput[] = [];
  for (let minute = current - WINDOW_MINUTES + 1; minute <= current; minute++) {
    series.push(metrics.perMinute.get(minute) ?? { created: 0, completed: 0, failed: 0 });
  }
  return series;
}

/** The smallest "round" number ≥ n (and ≥ 2), so that a chart's ticks at 0, ½ and 1 are whole. */
export function niceMax(n: number): number {
  if (n <= 2) return 2;
  const step = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 4, 5, 10]) if (m * step >= n) return m * step;
  return 10 * step;
}

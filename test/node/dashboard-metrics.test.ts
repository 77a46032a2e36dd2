import { beforeEach, describe, expect, it } from "vitest";
import type { Task } from "../../src/client/types";
import { countEvent, metrics, MINUTE_MS, niceMax, resetMetrics, sampleDepth, throughputSeries, WINDOW_MINUTES } from "../../src/dashboard/client/metrics";

const task = (code: string | null): Task => ({
  task_id: "tsk_1", namespace_id: "ns_1", task_type: "t", status: code ? "failed" : "completed", inputs: {}, outputs: null,
  progress: { percent: null, message: null, processed: null, total: null },
  error: code ? { code, message: "m", retryable: false } : null, attempt: 1, max_attempts: 3, priority: 5, parent_task_id: null,
  concurrency_key: null, run_at: null, replay_of_task_id: null, waiting: null, queue_position: null, created_at: "2026-12-01T00:00:00.000Z", queued_at: null, started_at: null, completed_at: null,
  updated_at: "2026-12-01T00:00:00.000Z", timeout_at: null, expires_at: null,
});
const stats = (created: number, queued: number, processing: number) => ({ created, queued, processing, max_concurrent_tasks: 7, processing_timeout_seconds: 1800 });

// The minute that starts at T0.
const T0 = 29_000_000 * MINUTE_MS;

describe("the dashboard's chart data", () => {
  beforeEach(() => resetMetrics(T0));

  it("counts created, completed and failed events in the minute the service emitted them", () => {
    countEvent("task.created", task(null), T0 + 1000);
    countEvent("task.created", task(null), T0 + 59_999);
    countEvent("task.completed", task(null), T0 + MINUTE_MS);
    countEvent("task.failed", task("timeout"), T0 + MINUTE_MS + 5);
    countEvent("task.progress", task(null), T0 + MINUTE_MS + 6);
    const series = throughputSeries(T0 + MINUTE_MS + 10);
    expect(series).toHaveLength(WINDOW_MINUTES);
    expect(series.at(-2)).toEqual({ created: 2, completed: 0, failed: 0 });
    expect(series.at(-1)).toEqual({ created: 0, completed: 1, failed: 1 });
  });

  it("counts failures by error code", () => {
    countEvent("task.failed", task("timeout"), T0);
    countEvent("task.failed", task("bad_input"), T0);
    countEvent("task.failed", task("timeout"), T0);
    expect([...metrics.failures]).toEqual([["timeout", 2], ["bad_input", 1]]);
  });

  it("forgets minutes that left the window", () => {
    countEvent("task.created", task(null), T0);
    countEvent("task.created", task(null), T0 + WINDOW_MINUTES * MINUTE_MS + 1);
    expect([...metrics.perMinute.keys()]).toEqual([T0 / MINUTE_MS + WINDOW_MINUTES]);
  });

  it("keeps a depth sample per change, and the last one before the window as its start", () => {
    sampleDepth(stats(0, 1, 2), T0);
    sampleDepth(stats(0, 1, 2), T0 + 1000);
    expect(metrics.depth).toHaveLength(1);
    sampleDepth(stats(5, 2, 5), T0 + 2000);
    sampleDepth(stats(4, 2, 5), T0 + WINDOW_MINUTES * MINUTE_MS + 3000);
    expect(metrics.depth.map((s) => [s.active, s.waiting, s.limit])).toEqual([[7, 5, 7], [7, 4, 7]]);
  });

  it("scales an axis to a round maximum whose half is whole", () => {
    expect([0, 1, 2, 3, 7, 13, 45, 99, 101].map(niceMax)).toEqual([2, 2, 2, 4, 10, 20, 50, 100, 200]);
  });
});

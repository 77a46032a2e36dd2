import { describe, expect, it } from "vitest";
import type { TaskRow } from "../../src/namespace/task-row";
import { eventJson, taskJson, taskOf } from "../../src/namespace/task-view";

describe("event JSON from a task's JSON text", () => {
  const task = { task_id: "tsk_a", status: "created", inputs: { q: "\"é\" \\ ✓\n", n: [1, 2.5, -0, 1e21] }, error: null, run_at: undefined };
  const head = { id: "evt_1", type: "task.created", created_at: "2026-12-02T08:00:00.000Z", namespace_id: "ns_x" };

  it("is byte for byte what JSON.stringify of the whole object gives", () => {
    expect(eventJson(head, `{"task":${JSON.stringify(task)}}`)).toBe(JSON.stringify({ ...head, data: { task } }));
    expect(eventJson({ ...head, created_at: null }, { other: 1 })).toBe(JSON.stringify({ ...head, created_at: null, data: { other: 1 } }));
  });
});

describe("a task's JSON text from its row", () => {
  const row: TaskRow = {
    task_id: "tsk_0mx6abc", seq: 7, task_type: "clip \"q\"", status: "processing",
    inputs: JSON.stringify({ q: "\"é\" \\ ✓\n", n: [1, 2.5, -0, 1e21], "2": "integer key", nested: { a: null } }),
    outputs: null, progress: JSON.stringify({ percent: 50, message: "half", processed: null, total: 10 }), error: null,
    attempt: 2, max_attempts: 3, priority: 9, parent_task_id: null, origin: "http://x", created_at: 1_764_662_400_123,
    queued_at: 1_764_662_400_200, started_at: 1_764_662_401_000, attempt_started_at: 1_764_662_401_000, completed_at: null,
    updated_at: 1_764_662_401_000, timeout_at: 1_764_664_201_000, lease_expires_at: 1_764_662_701_000, log_count: 3, version: 4,
    progress_event_at: null, checkpoint: null, continuation: 0, concurrency_key: "", run_at: null, scheduled: 0, replay_of_task_id: null,
  };
  const live = { queue_position: null, waiting: null };

  it("is byte for byte JSON.stringify of the client-facing task, for every status and null", () => {
    const rows: TaskRow[] = [
      row,
      { ...row, status: "created", queued_at: null, started_at: null, concurrency_key: "k\u2028", run_at: 1_764_700_000_000, replay_of_task_id: "tsk_r" },
      { ...row, status: "completed", outputs: JSON.stringify({ url: "s3://b/k", scores: [0.1, 1e-7] }), completed_at: 1_764_662_402_000, parent_task_id: "tsk_p" },
      { ...row, status: "failed", error: JSON.stringify({ code: "timeout", message: "ran 30 min", retryable: false }), completed_at: 1_764_662_402_000 },
    ];
    for (const r of rows) {
      for (const view of [live, { queue_position: 3, waiting: { reason: "concurrency_limit", position: 2, eta_seconds: null } as const }]) {
        expect(taskJson(r, "ns_x", 30 * 86_400_000, view)).toBe(JSON.stringify(taskOf(r, "ns_x", 30 * 86_400_000, view)));
      }
    }
  });
});

import { describe, expect, it } from "vitest";
import { eventJson } from "../../src/namespace/task-view";

describe("event JSON from a task's JSON text", () => {
  const task = { task_id: "tsk_a", status: "created", inputs: { q: "\"é\" \\ ✓\n", n: [1, 2.5, -0, 1e21] }, error: null, run_at: undefined };
  const head = { id: "evt_1", type: "task.created", created_at: "2026-12-02T08:00:00.000Z", namespace_id: "ns_x" };

  it("is byte for byte what JSON.stringify of the whole object gives", () => {
    expect(eventJson(head, `{"task":${JSON.stringify(task)}}`)).toBe(JSON.stringify({ ...head, data: { task } }));
    expect(eventJson({ ...head, created_at: null }, { other: 1 })).toBe(JSON.stringify({ ...head, created_at: null, data: { other: 1 } }));
  });
});

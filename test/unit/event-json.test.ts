import { describe, expect, it } from "vitest";
import { eventJson, recordJson, taskJsonOf } from "../../src/namespace/task-view";

describe("event and snapshot JSON from a task's JSON text", () => {
  const task = { task_id: "tsk_a", status: "created", inputs: { q: "\"é\" \\ ✓\n", n: [1, 2.5, -0, 1e21] }, error: null, run_at: undefined };
  const head = { id: "evt_1", type: "task.created", created_at: "2026-12-02T08:00:00.000Z", namespace_id: "ns_x" };

  it("is byte for byte what JSON.stringify of the whole object gives", () => {
    expect(eventJson(head, `{"task":${JSON.stringify(task)}}`)).toBe(JSON.stringify({ ...head, data: { task } }));
    expect(eventJson({ ...head, created_at: null }, { other: 1 })).toBe(JSON.stringify({ ...head, created_at: null, data: { other: 1 } }));
    for (const expiresAt of [null, 1_790_000_000_123]) {
      expect(recordJson(42, expiresAt, JSON.stringify(task))).toBe(JSON.stringify({ seq: 42, expires_at: expiresAt, task }));
    }
  });

  it("gives back the task's JSON text of a snapshot, whatever the task holds, and nothing of other text", () => {
    const tricky = { ...task, inputs: { text: ',"task":{"x":1}}' } };
    for (const expiresAt of [null, 1_790_000_000_123]) {
      const taskJson = JSON.stringify(tricky);
      expect(taskJsonOf(recordJson(7, expiresAt, taskJson))).toBe(taskJson);
    }
    expect(taskJsonOf('{"task":{"a":1}}')).toBeUndefined();
    expect(taskJsonOf("not json")).toBeUndefined();
  });
});

import { describe, expect, it } from "vitest";
import { NullsInline, TASK_TRANSITION } from "../../src/namespace/task-row";

describe("statements with their nulls written as NULL", () => {
  it("binds only the values that are not null, and builds each shape of nulls once", () => {
    let built = 0;
    const insert = new NullsInline((slots) => {
      built++;
      return `INSERT INTO t (a, b, c) VALUES (${slots.join(", ")})`;
    });
    expect(insert.bind(["x", null, 0])).toEqual(["INSERT INTO t (a, b, c) VALUES (?, NULL, ?)", ["x", 0]]);
    // 0 and "" are values, not nulls.
    expect(insert.bind(["", 5, null])).toEqual(["INSERT INTO t (a, b, c) VALUES (?, ?, NULL)", ["", 5]]);
    expect(insert.bind(["y", null, 1])).toEqual(["INSERT INTO t (a, b, c) VALUES (?, NULL, ?)", ["y", 1]]);
    expect(built).toBe(2);
  });

  it("refuses an undefined value (a missing column) and more values than its mask holds, rather than write NULL", () => {
    const insert = new NullsInline((slots) => `INSERT INTO t VALUES (${slots.join(", ")})`);
    expect(() => insert.bind(["x", undefined, 1])).toThrow(/value 1 is undefined/);
    expect(() => insert.bind(Array.from({ length: 32 }, () => 1))).toThrow(/at most 31/);
  });

  it("keeps a transition's task id bound last, after the columns it sets", () => {
    const values = ["completed", '{"ok":true}', "{}", null, 1, 10, 11, 11, 12, 12, null, null, 4, 3, "tsk_a"];
    const [text, params] = TASK_TRANSITION.bind(values);
    expect(text).toBe(
      "UPDATE tasks SET status = ?, outputs = ?, progress = ?, error = NULL, attempt = ?, queued_at = ?, started_at = ?, attempt_started_at = ?, " +
        "completed_at = ?, updated_at = ?, timeout_at = NULL, lease_expires_at = NULL, log_count = ?, version = ? WHERE task_id = ?",
    );
    expect(params).toEqual(values.filter((v) => v !== null));
  });
});

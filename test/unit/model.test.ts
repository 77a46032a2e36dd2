import { describe, expect, it } from "vitest";
import { canTransition, CreateTaskSchema, isTerminal, retryDelayMs, TASK_STATUSES, TERMINAL_STATUSES } from "../../src/tasks/model";

/** SPEC §5's allowed transitions, written out here independently of the code's table. */
const SPEC_TRANSITIONS = [
  "created→queued",
  "created→cancelled",
  "queued→processing",
  "queued→cancelled",
  "queued→failed",
  "processing→completed",
  "processing→failed",
  "processing→cancelled",
  "processing→queued",
];

describe("the task model", () => {
  it("allows exactly SPEC §5's transitions and refuses the other 27 pairs", () => {
    const allowed = TASK_STATUSES.flatMap((from) => TASK_STATUSES.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`));
    expect(allowed.sort()).toEqual([...SPEC_TRANSITIONS].sort());
    expect(TASK_STATUSES.length ** 2 - allowed.length).toBe(27);
  });

  it("never moves a terminal status again", () => {
    expect([...TERMINAL_STATUSES].sort()).toEqual(["cancelled", "completed", "failed"]);
    for (const from of TASK_STATUSES) {
      expect(isTerminal(from), from).toBe(TERMINAL_STATUSES.includes(from));
      if (isTerminal(from)) for (const to of TASK_STATUSES) expect(canTransition(from, to), `${from}→${to}`).toBe(false);
    }
  });

  it("waits between attempts within [0.5, 1] × min(5 s × 2^(n−1), 300 s)", () => {
    const caps = [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000];
    caps.forEach((cap, i) => {
      expect(retryDelayMs(i + 1, () => 0), `attempt ${i + 1}`).toBe(cap / 2);
      expect(retryDelayMs(i + 1, () => 1), `attempt ${i + 1}`).toBe(cap);
      expect(retryDelayMs(i + 1, () => 0.5), `attempt ${i + 1}`).toBe(cap * 0.75);
    });
  });

  it("takes a valid create and refuses unknown fields, bad task types and out-of-range numbers", () => {
    expect(CreateTaskSchema.safeParse({ task_type: "resize_image", inputs: { a: 1 }, priority: 9, max_attempts: 10 }).success).toBe(true);
    for (const bad of [
      { task_type: "Resize" },
      { task_type: "9lives" },
      { task_type: "a".repeat(65) },
      { task_type: "ok", priority: 10 },
      { task_type: "ok", priority: 1.5 },
      { task_type: "ok", max_attempts: 0 },
      { task_type: "ok", max_attempts: 11 },
      { task_type: "ok", parent_task_id: "job_1" },
      { task_type: "ok", surprise: true },
    ]) {
      expect(CreateTaskSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

import { describe, expect, it } from "vitest";
import { foldLogsIntoCompletions, type Pending } from "../../src/consumer/batcher";
import type { Report } from "../../src/namespace/contract";

/** The consumer's batcher folds an attempt's log line into its completion of the same turn (issue 11). */

function pending(taskId: string, report: Report, answers: string[]): Pending {
  return {
    item: { task_id: taskId, token: `tok-${taskId}`, report },
    bytes: 10,
    resolve: (result) => answers.push(`${taskId}:${report.kind}:${result.ok ? "ok" : "refused"}`),
    reject: () => answers.push(`${taskId}:${report.kind}:rejected`),
  };
}

const log = (message: string): Report => ({ kind: "logs", lines: [{ message }] });
const complete: Report = { kind: "complete", outputs: { done: true } };

describe("foldLogsIntoCompletions", () => {
  it("makes each attempt's line and completion one item, and answers both callers", () => {
    const answers: string[] = [];
    const folded = foldLogsIntoCompletions([
      pending("a", log("a indexed"), answers),
      pending("b", log("b indexed"), answers),
      pending("a", complete, answers),
      pending("b", complete, answers),
    ]);
    expect(folded.map((p) => p.item)).toEqual([
      { task_id: "a", token: "tok-a", report: { kind: "complete", outputs: { done: true }, lines: [{ message: "a indexed" }] } },
      { task_id: "b", token: "tok-b", report: { kind: "complete", outputs: { done: true }, lines: [{ message: "b indexed" }] } },
    ]);
    folded[0]!.resolve({ ok: false, error: { type: "conflict", message: "ended" } } as never);
    expect(answers).toEqual(["a:logs:refused", "a:complete:refused"]);
  });

  it("keeps apart what another report of the attempt separates, and lines with no completion", () => {
    const answers: string[] = [];
    const batch = [
      pending("a", log("first"), answers),
      pending("a", { kind: "progress", progress: { percent: 50 } }, answers),
      pending("a", complete, answers),
      pending("b", log("alone"), answers),
      pending("c", complete, answers),
    ];
    expect(foldLogsIntoCompletions(batch).map((p) => p.item.report.kind)).toEqual(["logs", "progress", "complete", "logs", "complete"]);
  });
});

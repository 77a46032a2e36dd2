import { describe, expect, it } from "vitest";
import { ceilings, formatFigure, LIMITS, perTask } from "../../bench/ceilings.mjs";
import { parseFairLines } from "../../bench/fair.mjs";

const side = (over: Record<string, unknown> = {}) => ({ doCalls: 0, alarms: 0, d1Statements: 0, d1Calls: 0, queueMessages: 0, byMethod: {}, ...over });

describe("the bench's counts per task", () => {
  it("adds both sides, and counts an object's alarms as requests to it", () => {
    const cost = perTask(
      {
        worker: side({ doCalls: 150, d1Statements: 40, d1Calls: 40, byMethod: { createTasks: 100, claimMany: 50 } }),
        object: side({ alarms: 50, d1Statements: 160, d1Calls: 20, queueMessages: 100, byMethod: {} }),
      },
      100,
    );
    expect(cost).toMatchObject({ tasks: 100, doRequests: 2, d1Statements: 2, d1StatementsFromObject: 1.6, d1Calls: 0.6, queueMessages: 1 });
    expect(cost.byMethod).toEqual({ createTasks: 1, claimMany: 0.5, alarm: 0.5 });
  });

  it("takes a side missing from the counts as zero", () => {
    expect(perTask({ worker: side({ doCalls: 5 }) }, 10).doRequests).toBe(0.5);
  });

  it("refuses a window with no task in it rather than divide by zero", () => {
    expect(() => perTask({ worker: side(), object: side() }, 0)).toThrow(/positive task count/);
  });
});

describe("the ceilings a path's counts imply", () => {
  it("divides each published limit by what a task costs of it; the least bounds one namespace", () => {
    const c = ceilings({ tasks: 1, doRequests: 4, d1Statements: 2, d1StatementsFromObject: 1, d1Calls: 1, queueMessages: 0.5, byMethod: {} });
    expect(c).toEqual({ namespace: 250, queue: 10_000, database: 500, overall: 250 });
  });

  it("has no bound from a resource the path never uses (pull tasks skip the queue)", () => {
    const c = ceilings({ tasks: 1, doRequests: 0.04, d1Statements: 0.5, d1StatementsFromObject: 0, d1Calls: 0.1, queueMessages: 0, byMethod: {} }, LIMITS);
    expect(c.queue).toBe(Infinity);
    expect(c.namespace).toBeCloseTo(25_000);
    expect(c.overall).toBe(2000);
  });

  it("formats small figures with two decimals, large ones whole, and no bound as ∞", () => {
    expect([formatFigure(0.04), formatFigure(12.6), formatFigure(Infinity), formatFigure(null)]).toEqual(["0.04", "13", "∞", "—"]);
  });
});

describe("the fairness bench's lines, as npm run bench reads them", () => {
  it("finds every figure of issue 14 in fair.bench.ts's output", () => {
    const figures = parseFairLines([
      "[fair bench] seeded 10000 waiting tasks over 10000 keys in 0.4 s",
      "[fair bench] admission at 10000 waiting: 9000, 10000, 11000 tasks/s (median 10000)",
      "[fair bench] admission at 1000000 waiting: 8000, 9000, 9500 tasks/s (median 9000)",
      "[fair bench] ratio 1000000 / 10000 waiting: 0.90",
      "[fair bench] bulk cancel of 100000 tasks: 4.1 s, 400 steps (10.3 ms a step on average)",
      "[fair bench] longest single step (from its start to the end of its yield, an upper bound): 31.5 ms (aim < 50 ms)",
      "[fair bench] a concurrent call waited at most 33.0 ms (p50 12.0 ms, p99 30.0 ms, 244 calls)",
      "[fair bench] eta_seconds against the observed start (80 tasks waiting ≥ 5 s): mean error 12.5 %, p90 20.0 %, max 30.1 %",
    ]);
    expect(figures).toEqual({
      admissionSmall: 10000,
      admissionBig: 9000,
      bigWaiting: 1000000,
      admissionRatio: 0.9,
      cancelled: 100000,
      longestStepMs: 31.5,
      concurrentWaitMs: 33,
      etaMeanErrorPercent: 12.5,
    });
  });

  it("leaves a figure whose line never came as null", () => {
    expect(parseFairLines(["[fair bench] ratio 20000 / 10000 waiting: 1.02"])).toMatchObject({ admissionRatio: 1.02, longestStepMs: null, etaMeanErrorPercent: null });
  });
});

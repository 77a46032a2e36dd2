import { describe, expect, it } from "vitest";
import { FairQueue } from "../../src/namespace/fairness";
import type { Sql } from "../../src/namespace/sql";

/** The rate reads only the completions it was told of: no SQL is touched. */
const queue = (): FairQueue => new FairQueue({} as Sql, () => null);

/** `bursts` bursts of `size` completions at one instant each, `periodMs` apart, from t = 0. */
function completeInBursts(fair: FairQueue, bursts: number, size: number, periodMs: number): number {
  for (let b = 0; b < bursts; b++) for (let i = 0; i < size; i++) fair.completed(b * periodMs);
  return (bursts - 1) * periodMs;
}

describe("the moving completion rate", () => {
  it("has no rate before completions at two instants", () => {
    const fair = queue();
    expect(fair.rate(0)).toBeNull();
    fair.completed(0);
    fair.completed(0);
    expect(fair.rate(0)).toBeNull();
    fair.completed(1000);
    expect(fair.rate(1000)).toBe(1);
  });

  it("reads bursts of a consumer batch (one instant each) at the rate they come: 4 every second is 4/s", () => {
    const fair = queue();
    const last = completeInBursts(fair, 5, 4, 1000);
    // Counting the first burst too would say 19 in 4 s (4.75/s), and mid-cycle a stall.
    expect(fair.rate(last)).toBe(4);
    expect(fair.rate(last + 900)).toBe(4);
  });

  it("decays once completions stall for more than two gaps between instants", () => {
    const fair = queue();
    const last = completeInBursts(fair, 5, 4, 1000);
    expect(fair.rate(last + 4000)).toBe(2);
  });

  it("forgets completions older than the window", () => {
    const fair = queue();
    completeInBursts(fair, 3, 1, 1000);
    expect(fair.rate(10 * 60_000)).toBeNull();
  });
});

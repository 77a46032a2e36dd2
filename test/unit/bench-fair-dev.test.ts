import { describe, expect, it } from "vitest";
import { formatSpread, spread } from "../../bench/fair-dev.mjs";

describe("the bulk-cancel bench's step lengths (bench/fair-dev.mjs)", () => {
  it("gives the longest, the p50, the p99 and how many passed the aim, whatever the order", () => {
    const durations = [...Array.from({ length: 98 }, (_, i) => i / 10), 60, 51];
    expect(spread(durations.reverse(), 50)).toEqual({ count: 100, longest: 60, p50: 5, p99: 60, over: 2 });
  });

  it("counts a step of exactly the aim as within it", () => {
    expect(spread([50, 49.9, 50.1]).over).toBe(1);
  });

  it("reads an empty run as zeros rather than failing", () => {
    expect(spread([])).toEqual({ count: 0, longest: 0, p50: 0, p99: 0, over: 0 });
  });

  it("prints a spread as the bench's lines do", () => {
    expect(formatSpread(spread([12.34, 70, 3]))).toBe("longest 70.0 ms, p99 70.0 ms, 1 of 3 over 50 ms");
  });
});

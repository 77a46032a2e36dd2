import { describe, expect, it } from "vitest";
import { jsonChunks } from "../../src/db/json-rows";

describe("jsonChunks", () => {
  it("fills each run up to the bound, in order, and gives a row over the bound a run of its own", () => {
    const rows = [3, 4, 2, 9, 1, 1, 12, 5];
    expect([...jsonChunks(rows, (n) => n, 10)]).toEqual([[3, 4, 2], [9, 1], [1], [12], [5]]);
  });

  it("gives nothing for no rows", () => {
    expect([...jsonChunks([], () => 1, 10)]).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { jsonOver } from "../../src/api/json-body";
import { jsonBytes } from "../../src/tasks/model";

// jsonOver skips encoding a value whose JSON is short enough (src/api/json-body.ts); it must
// agree with jsonBytes at every limit, multi-byte characters and surrogate pairs included.
describe("jsonOver", () => {
  const values: unknown[] = [
    { n: 1 },
    { text: "a".repeat(40) },
    { text: "é".repeat(20) },
    { text: "€".repeat(15) },
    { text: "😀".repeat(10) },
    { text: "\ud800 lone surrogate" },
    ["mixed", "é€😀", 12.5, null, true],
  ];

  it("agrees with jsonBytes > limit for every limit around each value's size", () => {
    for (const value of values) {
      const bytes = jsonBytes(value);
      const chars = JSON.stringify(value).length;
      for (let limit = 0; limit <= chars * 3 + 2; limit++) {
        expect(jsonOver(value, limit), `${JSON.stringify(value)} at ${limit} (${bytes} bytes)`).toBe(bytes > limit);
      }
    }
  });
});

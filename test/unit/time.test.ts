import { describe, expect, it } from "vitest";
import { iso } from "../../src/time";

describe("iso", () => {
  it("formats each instant as ISO 8601 with milliseconds, whatever it formatted before", () => {
    const a = Date.UTC(2026, 11, 2, 12, 0, 0, 5);
    const b = a + 1;
    expect([iso(a), iso(a), iso(b), iso(a), iso(null), iso(undefined), iso(0)]).toEqual([
      "2026-12-02T12:00:00.005Z",
      "2026-12-02T12:00:00.005Z",
      "2026-12-02T12:00:00.006Z",
      "2026-12-02T12:00:00.005Z",
      null,
      null,
      "1970-01-01T00:00:00.000Z",
    ]);
    expect(() => iso(Number.NaN)).toThrow(RangeError);
  });
});

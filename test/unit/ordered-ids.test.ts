import { describe, expect, it } from "vitest";
import { newOrderedId } from "../../src/ids";

describe("ordered ids", () => {
  it("sort by the time they were made, then carry 20 random base-36 characters", () => {
    const at = Date.UTC(2026, 11, 2);
    const ids = [at - 1, at, at, at + 1, at + 86_400_000].map((t) => newOrderedId("evt", t));
    for (const id of ids) expect(id).toMatch(/^evt_[0-9a-z]{9}[0-9a-z]{20}$/);
    expect(ids[0]! < ids[1]! && ids[2]! < ids[3]! && ids[3]! < ids[4]!).toBe(true);
    expect(ids[1]!.slice(0, 13)).toBe(ids[2]!.slice(0, 13));
    expect(ids[1]).not.toBe(ids[2]);
    // Ids keep their order across a change in the number of base-36 digits of the time.
    expect(newOrderedId("evt", 35) < newOrderedId("evt", 36)).toBe(true);
  });
});

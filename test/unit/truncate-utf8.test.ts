import { describe, expect, it } from "vitest";
import { truncateUtf8 } from "../../src/namespace/task-row";

const bytes = (text: string) => new TextEncoder().encode(text).byteLength;

describe("truncateUtf8", () => {
  it("keeps a text that fits, whatever its characters, and cuts one that does not at a character", () => {
    for (const unit of ["a", "é", "✓", "😀"]) {
      for (const count of [1, 100, 341, 342, 1000, 3000]) {
        const text = unit.repeat(count);
        const cut = truncateUtf8(text, 1024);
        if (bytes(text) <= 1024) expect(cut).toBe(text);
        else {
          expect(bytes(cut)).toBeLessThanOrEqual(1024);
          expect(cut.endsWith(" …[truncated]")).toBe(true);
          expect(text.startsWith(cut.slice(0, -" …[truncated]".length))).toBe(true);
        }
      }
    }
  });
});

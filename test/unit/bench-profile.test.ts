import { describe, expect, it } from "vitest";
import { callTree, type CpuProfile } from "../../bench/profile.mjs";

const frame = (functionName: string, lineNumber: number) => ({ functionName, url: lineNumber >= 0 ? "index.js" : "", lineNumber });

describe("the profile's call tree (bench/profile.mjs)", () => {
  // root → handler (line 1) → insert (line 3), and root → (idle); a sample's time is the delta beside it.
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame("(root)", -1), children: [2, 4] },
      { id: 2, callFrame: frame("handler", 1), children: [3], positionTicks: [{ line: 2, ticks: 1 }] },
      { id: 3, callFrame: frame("insert", 3), positionTicks: [{ line: 4, ticks: 5 }, { line: 5, ticks: 7 }] },
      { id: 4, callFrame: frame("(idle)", -1) },
    ],
    samples: [2, 3, 3, 3, 4],
    timeDeltas: [10, 20, 20, 20, 30],
  };
  const bundle = ["// line 0", "async function handler() {", "  await insert();", "function insert() {", "  sql.run(...);", "  more();"];

  it("gives each node its inclusive and self share, its source line and its hottest lines, children by share", () => {
    expect(callTree(profile, bundle, 0)).toEqual([
      "100.0% (self 0.0) (root):-1  ",
      "  70.0% (self 10.0) handler:1 async function handler() { L2:1",
      "    60.0% (self 60.0) insert:3 function insert() { L5:7 L4:5",
      "  30.0% (self 30.0) (idle):-1  ",
    ]);
  });

  it("leaves out the nodes below the smallest share asked for, with what they call", () => {
    expect(callTree(profile, bundle, 65).map((line) => line.trim().split(" (")[0])).toEqual(["100.0%", "70.0%"]);
  });
});

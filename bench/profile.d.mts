// Types of bench/profile.mjs, for its unit test (test/unit/bench-profile.test.ts).
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[]; positionTicks?: { line: number; ticks: number }[] }[];
  samples: number[];
  timeDeltas: number[];
}
export function callTree(profile: CpuProfile, bundle: string[], minShare: number): string[];

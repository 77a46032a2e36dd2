// Types of bench/fair-dev.mjs, for the unit test (test/unit/bench-fair-dev.test.ts) and bench/run.mjs.
export const STEP_AIM_MS: number;
export interface Spread {
  count: number;
  longest: number;
  p50: number;
  p99: number;
  over: number;
}
export function spread(durations: number[], aimMs?: number): Spread;
export function formatSpread(spread: Spread, aimMs?: number): string;
export interface FairDevFigures {
  cancelled: number;
  steps: number;
  longestStepMs: number;
  p99StepMs: number;
  slowSteps: number;
  longestHoldMs: number;
  concurrentWaitMs: number;
}
export function runFairDev(options?: { count?: number; port?: number; log?: (line: string) => void }): Promise<FairDevFigures>;

// Types of bench/fair.mjs, for the unit test (test/unit/bench-ceilings.test.ts).
export interface FairFigures {
  admissionSmall: number | null;
  admissionBig: number | null;
  bigWaiting: number | null;
  admissionRatio: number | null;
  cancelled: number | null;
  longestStepMs: number | null;
  concurrentWaitMs: number | null;
  etaMeanErrorPercent: number | null;
}
export function parseFairLines(lines: string[]): FairFigures;
export function runFair(options?: { quiet?: boolean }): Promise<{ status: number; lines: string[]; figures: FairFigures }>;

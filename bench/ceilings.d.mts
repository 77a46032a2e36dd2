// Types of bench/ceilings.mjs, for the unit test (test/unit/bench-ceilings.test.ts).
export interface Limits {
  objectRequestsPerSecond: number;
  queueMessagesPerSecond: number;
  d1QueriesPerSecond: number;
}
export interface SideCounts {
  doCalls?: number;
  alarms?: number;
  d1Statements?: number;
  d1Calls?: number;
  queueMessages?: number;
  byMethod?: Record<string, number>;
}
export interface PerTask {
  tasks: number;
  doRequests: number;
  d1Statements: number;
  d1StatementsFromObject: number;
  d1Calls: number;
  queueMessages: number;
  byMethod: Record<string, number>;
}
export interface Ceilings {
  namespace: number;
  queue: number;
  database: number;
  overall: number;
}
export const LIMITS: Limits;
export function perTask(counts: { worker?: SideCounts; object?: SideCounts }, tasks: number): PerTask;
export function ceilings(cost: PerTask, limits?: Limits): Ceilings;
export function formatFigure(value: number | null | undefined): string;

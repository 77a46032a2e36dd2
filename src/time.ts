let lastMs = Number.NaN;
let lastIso = "";

/**
 * ISO 8601 UTC with milliseconds, or null. The last answer is kept: a step stamps every task it
 * changes with the same instant, and a batch's answer formats it hundreds of times.
 */
export const iso = (ms: number | null | undefined): string | null => {
  if (ms === null || ms === undefined) return null;
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
};

export const isoNow = (): string => new Date().toISOString();

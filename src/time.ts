/** ISO 8601 UTC with milliseconds, or null. */
export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();

export const isoNow = (): string => new Date().toISOString();

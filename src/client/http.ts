import { ApiError, NetworkError } from "./errors.js";

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface RetryPolicy {
  /** Retries after the first attempt (network errors, 429, 5xx). Default 3. */
  retries: number;
  /** The first backoff; each retry doubles it. Default 250 ms. */
  baseDelayMs: number;
  /** The longest backoff. Default 10 s. */
  maxDelayMs: number;
  /** A longer `Retry-After` than this is not waited for: the error is thrown. Default 60 s. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 3, baseDelayMs: 250, maxDelayMs: 10_000, maxRetryAfterMs: 60_000 };

/** The wait before retry n (0-based): random in [0.5, 1] × min(base × 2^n, max). */
export function backoffMs(policy: Pick<RetryPolicy, "baseDelayMs" | "maxDelayMs">, retry: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.baseDelayMs * 2 ** retry, policy.maxDelayMs);
  return Math.round(cap * (0.5 + 0.5 * random()));
}

/** `Retry-After` in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A path segment, escaped. */
export const seg = (value: string): string => encodeURIComponent(value);

export const isRetryableStatus = (status: number): boolean => status === 429 || status >= 500;

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Whether an error is the abort of `signal` (which is never retried). */
export const isAbort = (err: unknown, signal?: AbortSignal): boolean =>
  (signal?.aborted ?? false) || (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError"));

/** The ApiError of a non-2xx response, from the SPEC §3 error body when there is one. */
export async function apiErrorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : undefined;
  const type = typeof error?.type === "string" ? error.type : `http_${response.status}`;
  const message = typeof error?.message === "string" ? error.message : text.slice(0, 200) || response.statusText || `HTTP ${response.status}`;
  return new ApiError(response.status, type, message, error?.details, retryAfterMs);
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

export interface SendOptions {
  method: string;
  url: string;
  headers: Headers;
  body?: string;
  signal?: AbortSignal;
}

/**
 * Sends one request with retries: network errors (including a body lost mid-read), 429 and
 * 5xx are retried with exponential backoff and jitter, or after `Retry-After` when the server
 * sent one; other 4xx never are. The caller keeps every header across attempts, so an
 * Idempotency-Key stays the same. Resolves with the response's status, headers and body text.
 */
export async function send(fetchFn: FetchLike, policy: RetryPolicy, options: SendOptions): Promise<{ status: number; headers: Headers; text: string }> {
  for (let retry = 0; ; retry++) {
    const last = retry >= policy.retries;
    let waitMs: number;
    try {
      const response = await fetchFn(options.url, { method: options.method, headers: options.headers, body: options.body, signal: options.signal });
      if (response.ok || response.status === 304) {
        return { status: response.status, headers: response.headers, text: await response.text() };
      }
      const error = await apiErrorOf(response);
      if (!isRetryableStatus(response.status) || last) throw error;
      if (error.retryAfterMs !== undefined && error.retryAfterMs > policy.maxRetryAfterMs) throw error;
      waitMs = error.retryAfterMs ?? backoffMs(policy, retry);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (isAbort(err, options.signal)) throw options.signal?.reason ?? err;
      if (last) throw new NetworkError(`${options.method} ${options.url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      waitMs = backoffMs(policy, retry);
    }
    await sleep(waitMs, options.signal);
  }
}

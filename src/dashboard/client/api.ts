import { ApiError } from "../../client/errors.js";
import { apiErrorOf, isRecord, isRetryableStatus } from "../../client/http.js";
import type { LogLine, Page, Stats, Task } from "../../client/types.js";
import { ui } from "./dom.js";
import { hooks, isStatus, state } from "./state.js";

/** The key was refused: the session has ended, nothing is worth showing or retrying. */
export class KeyRefused extends Error {}

/** Whether a failed call may succeed if made again (not a refused key, not a 4xx). */
export const worthRetrying = (err: unknown): boolean =>
  !(err instanceof KeyRefused) && !(err instanceof ApiError && !isRetryableStatus(err.status) && err.status !== 408);

/** A JSON call to the API with the key; a refused key ends the session. */
export async function api(path: string, init: RequestInit = {}): Promise<unknown> {
  const key = state.apiKey;
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${key}`);
  const res = await fetch(path, { ...init, headers, cache: "no-store" });
  if (res.status === 401) {
    // Only if it is still the key in use: a late answer must not drop a newly entered one.
    if (key === state.apiKey) hooks.keyRefused();
    throw new KeyRefused("the API key was refused");
  }
  if (!res.ok) throw await apiErrorOf(res);
  return res.json();
}

export function showNotice(err: unknown): void {
  if (err instanceof KeyRefused) return;
  ui.notice.textContent = err instanceof Error ? err.message : String(err);
}

// The service is same-origin and trusted, but a shape check keeps a version skew (an old page
// against a newer service) from turning into a TypeError deep in the rendering.

export const isTask = (value: unknown): value is Task =>
  isRecord(value) && typeof value.task_id === "string" && typeof value.status === "string" && isStatus(value.status) &&
  typeof value.task_type === "string" && typeof value.created_at === "string" && typeof value.updated_at === "string";

export const isStats = (value: unknown): value is Stats =>
  isRecord(value) && ["created", "queued", "processing", "max_concurrent_tasks"].every((name) => typeof value[name] === "number");

const isLogLine = (value: unknown): value is LogLine =>
  isRecord(value) && typeof value.timestamp === "string" && typeof value.level === "string" && typeof value.message === "string";

/** A list page's items that pass `guard`, and its next cursor. */
export function pageOf<T>(body: unknown, guard: (item: unknown) => item is T): Page<T> {
  const results = isRecord(body) && Array.isArray(body.results) ? body.results.filter(guard) : [];
  const pagination = isRecord(body) && isRecord(body.pagination) ? body.pagination : {};
  const next = typeof pagination.next_cursor === "string" ? pagination.next_cursor : null;
  return { results, pagination: { limit: results.length, next_cursor: next } };
}

export const logPage = (body: unknown): Page<LogLine> => pageOf(body, isLogLine);

/** The message of a non-2xx answer: the SPEC §3 error's, else the status line. */
export const errorMessage = async (res: Response): Promise<string> => (await apiErrorOf(res)).message;

import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The error types of SPEC §3, each with its HTTP status. */
export const ERROR_STATUS = {
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  validation_error: 422,
  rate_limited: 429,
  internal_error: 500,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorType = keyof typeof ERROR_STATUS;

/** The serialisable shape of an expected failure, also what Durable Object RPC methods return. */
export interface ErrorInfo {
  type: ErrorType;
  message: string;
  details?: unknown;
  /** For `rate_limited`: the Retry-After to answer with, in whole seconds. */
  retry_after_seconds?: number;
}

/** An error that is answered with its own status and body; anything else becomes a 500. */
export class ApiError extends Error {
  readonly type: ErrorType;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(type: ErrorType, message: string, details?: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.type = type;
    this.details = details;
    this.headers = headers;
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.type];
  }

  static from(info: ErrorInfo): ApiError {
    // SPEC §3: every 429 says when to come back; a Durable Object's refusal carries no headers.
    const headers: Record<string, string> = info.type === "rate_limited" ? { "Retry-After": String(info.retry_after_seconds ?? 1) } : {};
    return new ApiError(info.type, info.message, info.details, headers);
  }

  toBody(): ErrorBody {
    return errorBody(this.type, this.message, this.details);
  }
}

export interface ErrorBody {
  success: false;
  status: number;
  error: { type: ErrorType; message: string; details?: unknown };
}

export function errorBody(type: ErrorType, message: string, details?: unknown): ErrorBody {
  const error: ErrorBody["error"] = { type, message };
  if (details !== undefined) error.details = details;
  return { success: false, status: ERROR_STATUS[type], error };
}

/**
 * The result of an RPC call that can fail in an expected way. Errors thrown across RPC lose
 * their class, so expected failures travel as values and are re-thrown on the Worker side.
 */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = (type: ErrorType, message: string, details?: unknown): { ok: false; error: ErrorInfo } => ({
  ok: false,
  error: details === undefined ? { type, message } : { type, message, details },
});

/** Returns the value of a Result or throws it as an ApiError. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw ApiError.from(result.error);
}

/**
 * Awaits a write that creates a named resource; a UNIQUE violation (the name is taken) becomes
 * SPEC §3's 409 conflict, anything else is rethrown.
 */
export async function createUnique<T>(write: Promise<T>, what: string): Promise<T> {
  try {
    return await write;
  } catch (err) {
    if (String(err).includes("UNIQUE")) throw new ApiError("conflict", `${what} already exists`);
    throw err;
  }
}

/**
 * Runs `fn` with a signal that aborts after `ms`, and clears the timer as soon as `fn` settles:
 * `AbortSignal.timeout` would leave its timer pending for the full time, keeping the Durable
 * Object busy after every outbound call.
 */
export async function withTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms / 1000} s`, "TimeoutError")), ms);
  try {
    return await fn(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

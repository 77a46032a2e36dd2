import type { Result } from "../errors";
import { getHandler, type HandlerContext, TaskEnded, TaskFailure, Yielded } from "../handlers/registry";
import type { ClaimResult, Report, ReportAck } from "../namespace/contract";
import { jsonBytes, LIMITS } from "../tasks/model";
import { type NamespaceStub, reporter } from "../namespace/stub";

type Claimed = Extract<ClaimResult, { claimed: true }>;

/** How often a running built-in handler renews its lease, as a share of the lease. */
const HEARTBEAT_SHARE = 1 / 3;
/**
 * How long one invocation runs a handler before it should yield. Short enough that a long task
 * never holds a consumer (or, locally, the one queue) for long; long enough to amortise a hop.
 */
export const SLICE_MS = 10_000;
/**
 * How long past its slice an invocation waits for a handler before it gives the attempt up. The
 * heartbeat renews the lease while a handler runs, so without this bound a handler that never
 * returned would hold its consumer, and its lease, until the task's processing timeout.
 */
export const SLICE_OVERRUN_MS = 60_000;
/** What a client sees of an error our code did not expect; the detail goes to the log. */
export const UNEXPECTED_ERROR_MESSAGE = "the handler failed unexpectedly";

/**
 * Runs a claimed attempt with its built-in handler. The handler's context renews the lease
 * while it runs, and aborts its signal as soon as the attempt has ended elsewhere. The
 * invocation stops waiting for the handler once its signal is aborted (the attempt ended, or the
 * handler overran its slice by `overrunMs`), so a handler that ignores its signal cannot hold
 * the consumer.
 */
export async function runBuiltin(
  stubFor: () => NamespaceStub,
  claim: Claimed,
  env: Env,
  leaseSeconds: number,
  sliceMs = SLICE_MS,
  overrunMs = SLICE_OVERRUN_MS,
): Promise<void> {
  const sliceEnds = Date.now() + sliceMs;
  const taskId = claim.task.task_id;
  const send = reporter(stubFor, taskId, claim.token);
  const handler = getHandler(claim.task.task_type);
  if (!handler) {
    await finalReport(send, { kind: "fail", error: { code: "no_handler", message: `no handler for "${claim.task.task_type}"` }, retryable: false });
    return;
  }
  const controller = new AbortController();
  let ended: TaskEnded | null = null;
  const check = (result: Result<ReportAck>): void => {
    if (result.ok) return;
    const status = (result.error.details as { status?: string } | undefined)?.status ?? "ended";
    ended ??= new TaskEnded(status);
    controller.abort(ended);
    throw ended;
  };
  const heartbeat = setInterval(() => {
    send({ kind: "heartbeat" }).then(check).catch(() => undefined);
  }, leaseSeconds * 1000 * HEARTBEAT_SHARE);
  const ctx: HandlerContext = {
    task: claim.task,
    attempt: claim.task.attempt,
    env,
    signal: controller.signal,
    progress: async (progress) => check(await send({ kind: "progress", progress })),
    log: async (message, level) => check(await send({ kind: "logs", lines: [{ message, level }] })),
    checkpoint: claim.checkpoint,
    origin: env.PUBLIC_URL || claim.origin,
    shouldYield: () => Date.now() >= sliceEnds,
    yield: (state) => new Yielded(state),
  };
  // Not retried: every handler yields within its slice, so one that did not would do it again.
  const overrun = setTimeout(() => {
    controller.abort(new TaskFailure("slice_overrun", `the handler did not yield within ${Math.round((sliceMs + overrunMs) / 1000)} s`, false));
  }, sliceMs + overrunMs);
  const stopped = new Promise<never>((_, reject) => {
    controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  const running = handler.run(ctx);
  // Once abandoned, whatever the handler still throws has nowhere to go.
  running.catch(() => undefined);
  try {
    const result = (await Promise.race([running, stopped])) ?? {};
    if (ended || controller.signal.aborted) return;
    if (result instanceof Yielded) {
      await finalReport(send, { kind: "checkpoint", state: result.state });
      return;
    }
    const outputs = result;
    if (jsonBytes(outputs) > LIMITS.outputsBytes) {
      await finalReport(send, { kind: "fail", error: { code: "outputs_too_large", message: `outputs exceed ${LIMITS.outputsBytes} bytes` }, retryable: false });
    } else {
      await finalReport(send, { kind: "complete", outputs });
    }
  } catch (err) {
    if (err instanceof TaskEnded || ended) return;
    if (!(err instanceof TaskFailure)) console.error(`task ${taskId} (${claim.task.task_type}): handler error`, err);
    // Only a TaskFailure's message is written for clients; anything else (a D1 error with its
    // SQL, a stack) may carry internal text, so it is reported as a generic failure.
    const failure =
      err instanceof TaskFailure
        ? { kind: "fail" as const, error: { code: err.code, message: err.message }, retryable: err.retryable }
        : { kind: "fail" as const, error: { code: "handler_error", message: UNEXPECTED_ERROR_MESSAGE }, retryable: true };
    await finalReport(send, failure);
  } finally {
    clearInterval(heartbeat);
    clearTimeout(overrun);
  }
}

/**
 * Sends an attempt's last report, retrying a failed call: losing it would leave the task to its
 * lease expiry and a needless retry. A refusal (the attempt already ended) is final.
 */
async function finalReport(send: (r: Report) => Promise<Result<ReportAck>>, report: Report): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await send(report);
      return;
    } catch (err) {
      if (attempt >= 2) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }
}

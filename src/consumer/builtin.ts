import type { Result } from "../errors";
import { type BatchOutcome, type HandlerContext, type HandlerDefinition, invalidInputs, TaskEnded, TaskFailure, Yielded } from "../handlers/registry";
import { handlerFor } from "../handlers/table";
import type { ClaimResult, Report, ReportReceipt } from "../namespace/contract";
import type { NamespaceStub } from "../namespace/stub";
import { jsonBytes, LIMITS } from "../tasks/model";
import { ReportBatcher } from "./batcher";
import { config } from "../config";

export type Claimed = Extract<ClaimResult, { claimed: true }>;

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
 * Runs a claimed attempt with its built-in handler, its inputs parsed with the handler's
 * schema first: inputs that do not parse fail the task for good. The handler's context renews the lease
 * while it runs, and aborts its signal as soon as the attempt has ended elsewhere. The
 * invocation stops waiting for the handler once its signal is aborted (the attempt ended, or the
 * handler overran its slice by `overrunMs`), so a handler that ignores its signal cannot hold
 * the consumer. Reports go through `batcher`, shared by the attempts of one namespace.
 */
export async function runBuiltin(
  stubFor: () => NamespaceStub,
  claim: Claimed,
  env: Env,
  leaseSeconds: number,
  sliceMs = SLICE_MS,
  overrunMs = SLICE_OVERRUN_MS,
  batcher = new ReportBatcher(stubFor),
): Promise<void> {
  const handler = handlerFor(claim.task.task_type);
  const parsed = handler?.inputs.safeParse(claim.task.inputs);
  const attempt = startAttempt(claim, env, batcher, leaseSeconds, Date.now() + sliceMs, parsed?.data);
  if (!handler || !parsed?.success) {
    attempt.stop();
    if (!handler) await finalReport(attempt.send, { kind: "fail", error: { code: "no_handler", message: `no handler for "${claim.task.task_type}"` }, retryable: false });
    else await settle(attempt, invalidInputs());
    return;
  }
  const { controller } = attempt;
  // Not retried: every handler yields within its slice, so one that did not would do it again.
  const overrun = setTimeout(() => controller.abort(overrunFailure(sliceMs, overrunMs)), sliceMs + overrunMs);
  const stopped = new Promise<never>((_, reject) => {
    controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
  });
  const running = handler.run(attempt.ctx);
  // Once abandoned, whatever the handler still throws has nowhere to go.
  running.catch(() => undefined);
  let outcome: BatchOutcome;
  try {
    outcome = await Promise.race([running, stopped]);
    if (attempt.ended() || controller.signal.aborted) return;
  } catch (err) {
    outcome = err instanceof Error ? err : new Error(String(err));
  } finally {
    attempt.stop();
    clearTimeout(overrun);
  }
  await settle(attempt, outcome);
}

/**
 * Runs several claimed attempts of one task type with the handler's `runBatch`: one call for
 * all, each attempt with its own context, token, signal and final report. The slice and its
 * overrun bound the whole call. An attempt whose inputs do not parse with the handler's schema
 * fails for good, and is left out of the call. `beforeSettle` runs just before the final
 * reports are made (the consumer's claim-ahead rides on them).
 */
export async function runBuiltinBatch(
  claims: Claimed[],
  handler: Pick<HandlerDefinition, "inputs"> & Required<Pick<HandlerDefinition, "runBatch">>,
  env: Env,
  batcher: ReportBatcher,
  leaseSeconds: number,
  sliceMs = SLICE_MS,
  overrunMs = SLICE_OVERRUN_MS,
  beforeSettle?: () => void,
): Promise<void> {
  const sliceEnds = Date.now() + sliceMs;
  const parsed = claims.map((claim) => handler.inputs.safeParse(claim.task.inputs));
  const attempts = claims.map((claim, i) => startAttempt(claim, env, batcher, leaseSeconds, sliceEnds, parsed[i]?.data));
  const valid = attempts.filter((_, i) => parsed[i]?.success);
  const overall = new AbortController();
  const overrun = setTimeout(() => {
    const reason = overrunFailure(sliceMs, overrunMs);
    overall.abort(reason);
    for (const a of attempts) a.controller.abort(reason);
  }, sliceMs + overrunMs);
  const stopped = new Promise<never>((_, reject) => {
    overall.signal.addEventListener("abort", () => reject(overall.signal.reason), { once: true });
  });
  const running = valid.length > 0 ? handler.runBatch(valid.map((a) => a.ctx)) : Promise.resolve([]);
  running.catch(() => undefined);
  let validOutcomes: BatchOutcome[] | null = null;
  let failure: Error | null = null;
  try {
    validOutcomes = await Promise.race([running, stopped]);
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
  } finally {
    for (const a of attempts) a.stop();
    clearTimeout(overrun);
  }
  // In the same turn as the final reports below, so that one call carries both.
  beforeSettle?.();
  await Promise.all(
    attempts.map(async (a, i) => {
      const j = valid.indexOf(a);
      const outcome = j < 0 ? invalidInputs() : (failure ?? validOutcomes?.[j] ?? new Error("the batch handler gave no outcome for this task"));
      // An attempt that ended elsewhere (its own signal aborted by a refusal) reports nothing.
      if (a.ended() || (a.controller.signal.aborted && !overall.signal.aborted)) return;
      await settle(a, outcome);
    }),
  );
}

interface RunningAttempt {
  ctx: HandlerContext;
  controller: AbortController;
  send: (report: Report) => Promise<Result<ReportReceipt>>;
  /** Whether the object refused a report: the attempt ended elsewhere. */
  ended(): boolean;
  /** Stops the heartbeat. */
  stop(): void;
}

/** An attempt's context: its reports fenced by its token, its lease renewed while it runs. */
function startAttempt(claim: Claimed, env: Env, batcher: ReportBatcher, leaseSeconds: number, sliceEnds: number, inputs: unknown): RunningAttempt {
  const send = batcher.sender(claim.task.task_id, claim.token);
  const controller = new AbortController();
  let ended: TaskEnded | null = null;
  const refused = (result: Result<ReportReceipt>): TaskEnded | null => {
    if (result.ok) return null;
    const status = (result.error.details as { status?: string } | undefined)?.status ?? "ended";
    ended ??= new TaskEnded(status);
    controller.abort(ended);
    return ended;
  };
  const check = (result: Result<ReportReceipt>): void => {
    const end = refused(result);
    if (end) throw end;
  };
  const stop = batcher.keepAlive(claim.task.task_id, claim.token, leaseSeconds * 1000 * HEARTBEAT_SHARE, (result) => void refused(result));
  const ctx: HandlerContext = {
    task: claim.task,
    inputs,
    attempt: claim.task.attempt,
    env,
    signal: controller.signal,
    progress: async (progress) => check(await send({ kind: "progress", progress })),
    log: async (message, level) => check(await send({ kind: "logs", lines: [{ message, level }] })),
    checkpoint: claim.checkpoint,
    origin: config(env).publicUrl ?? claim.origin,
    shouldYield: () => Date.now() >= sliceEnds,
    yield: (state) => new Yielded(state),
  };
  return { ctx, controller, send, ended: () => ended !== null, stop };
}

const overrunFailure = (sliceMs: number, overrunMs: number): TaskFailure =>
  new TaskFailure("slice_overrun", `the handler did not yield within ${Math.round((sliceMs + overrunMs) / 1000)} s`, false);

/** Sends the last report of an attempt that its handler finished, yielded or failed. */
async function settle(attempt: RunningAttempt, outcome: BatchOutcome): Promise<void> {
  const task = attempt.ctx.task;
  if (outcome instanceof Error) {
    if (outcome instanceof TaskEnded || attempt.ended()) return;
    if (!(outcome instanceof TaskFailure)) console.error(`task ${task.task_id} (${task.task_type}): handler error`, outcome);
    // Only a TaskFailure's message is written for clients; anything else (a D1 error with its
    // SQL, a stack) may carry internal text, so it is reported as a generic failure.
    const failure: Report =
      outcome instanceof TaskFailure
        ? { kind: "fail", error: { code: outcome.code, message: outcome.message }, retryable: outcome.retryable }
        : { kind: "fail", error: { code: "handler_error", message: UNEXPECTED_ERROR_MESSAGE }, retryable: true };
    await finalReport(attempt.send, failure);
    return;
  }
  if (outcome instanceof Yielded) {
    await finalReport(attempt.send, { kind: "checkpoint", state: outcome.state });
    return;
  }
  const outputs = outcome ?? {};
  if (jsonBytes(outputs) > LIMITS.outputsBytes) {
    await finalReport(attempt.send, { kind: "fail", error: { code: "outputs_too_large", message: `outputs exceed ${LIMITS.outputsBytes} bytes` }, retryable: false });
  } else {
    await finalReport(attempt.send, { kind: "complete", outputs });
  }
}

/**
 * Sends an attempt's last report, retrying a failed call: losing it would leave the task to its
 * lease expiry and a needless retry. A refusal (the attempt already ended) is final.
 */
async function finalReport(send: (r: Report) => Promise<Result<ReportReceipt>>, report: Report): Promise<void> {
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

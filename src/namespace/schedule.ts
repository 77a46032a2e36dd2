import { fail, ok, type Result } from "../errors";
import { type CreateTaskInput, MAX_DELAY_SECONDS } from "../tasks/model";

/**
 * SPEC §5's scheduled start: `run_at` or `delay_seconds`, not both, at most 30 days ahead.
 * A run_at in the past starts the task as if it had none. `where` goes into an error's details
 * (a batch item's index).
 */
export function checkSchedule(input: Pick<CreateTaskInput, "run_at" | "delay_seconds">, now: number, where: Record<string, unknown> = {}): Result<null> {
  if (input.run_at !== undefined && input.delay_seconds !== undefined) {
    return fail("validation_error", "give run_at or delay_seconds, not both", { ...where, field: "run_at" });
  }
  if (input.run_at !== undefined) {
    const at = Date.parse(input.run_at);
    if (Number.isNaN(at)) return fail("validation_error", "run_at must be an ISO 8601 time", { ...where, field: "run_at" });
    if (at > now + MAX_DELAY_SECONDS * 1000) {
      return fail("validation_error", `run_at may be at most ${MAX_DELAY_SECONDS / 86400} days ahead`, { ...where, field: "run_at" });
    }
  }
  return ok(null);
}

/** When a task may start (ms on the object's clock), or null when at once. */
export function runAtOf(input: Pick<CreateTaskInput, "run_at" | "delay_seconds">, now: number): number | null {
  if (input.delay_seconds !== undefined && input.delay_seconds > 0) return now + input.delay_seconds * 1000;
  if (input.run_at !== undefined) {
    const at = Date.parse(input.run_at);
    return Number.isNaN(at) || at <= now ? null : Math.min(at, now + MAX_DELAY_SECONDS * 1000);
  }
  return null;
}

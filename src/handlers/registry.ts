import { z } from "@hono/zod-openapi";
import { registerTestTaskType } from "../tasks/builtin-types";
import type { JsonValue, LogLevel, ProgressInput, Task } from "../tasks/model";

/** What a built-in handler gets for one attempt; `I` is its type's parsed inputs. */
export interface HandlerContext<I = unknown> {
  readonly task: Task;
  /** The task's inputs, parsed with the handler's `inputs` schema before it runs. */
  readonly inputs: I;
  readonly attempt: number;
  readonly env: Env;
  /** Base URL of the API that created the task (for tasks this one creates). */
  readonly origin: string;
  /** Aborted when the task is cancelled, times out, or loses its lease. */
  readonly signal: AbortSignal;
  /** Reports progress and renews the lease; throws TaskEnded once the attempt has ended. */
  progress(report: ProgressInput): Promise<void>;
  /** Adds a line to the task's log. */
  log(message: string, level?: LogLevel): Promise<void>;
  /** The state saved by the last `yield`, when this invocation continues earlier work. */
  readonly checkpoint: JsonValue | null;
  /** True once this invocation has used its time slice: save a checkpoint and `yield`. */
  shouldYield(): boolean;
  /** Ends this invocation; the attempt continues in a new one, which gets `state` as its checkpoint. */
  yield(state: JsonValue): Yielded;
}

/** What `ctx.yield()` returns; a handler returns it in place of its outputs. */
export class Yielded {
  constructor(readonly state: JsonValue) {}
}

export interface HandlerDefinition<I = unknown> {
  readonly type: string;
  /**
   * The task's inputs: checked at create (a failure is answered 422), and parsed by the runner
   * before each attempt. Inputs that no longer parse fail the task `invalid_inputs`, for good.
   */
  readonly inputs: z.ZodType<I>;
  run(ctx: HandlerContext<I>): Promise<HandlerResult>;
  /**
   * Optional: runs several attempts of this type of one namespace at once (tasks that arrived in
   * the same queue batch), one outcome per context, in order. An Error outcome fails that attempt
   * alone, as `run` throwing it would; a throw fails them all. Each context reports, and is
   * fenced, on its own: a context whose attempt ended throws TaskEnded from its reports, and the
   * handler gives that outcome up (any value will do). A lone task of the type goes to `run`.
   */
  runBatch?(ctxs: HandlerContext<I>[]): Promise<BatchOutcome[]>;
}

/** A handler with its inputs typed by its schema; the handlers' table (./table) lists each one. */
export const defineHandler = <I>(definition: HandlerDefinition<I>): HandlerDefinition<I> => definition;

/** What a handler's run returns: the outputs, or `ctx.yield(state)` to continue later. */
export type HandlerResult = Record<string, unknown> | Yielded | void;
/** One attempt's outcome in a `runBatch`: its result, or the error that fails it. */
export type BatchOutcome = HandlerResult | Error;

/** Thrown by a handler to fail its attempt with a code; `retryable` decides whether it is retried. */
export class TaskFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = true,
  ) {
    super(message);
  }
}

/** Thrown into a handler when its attempt ended elsewhere (cancelled, timed out, lease lost). */
export class TaskEnded extends Error {
  constructor(readonly status: string) {
    super(`the attempt has ended (task is ${status})`);
  }
}

/** The failure of a task whose inputs do not fit its handler's schema. */
export const invalidInputs = (): TaskFailure => new TaskFailure("invalid_inputs", "the task's inputs do not fit its type", false);

/** Handlers tests add at runtime; see registerHandler. */
export const testHandlers = new Map<string, HandlerDefinition>();

/**
 * Test-only: adds a handler beside the built-in table, and makes its type creatable. Tests run
 * the real Worker and Durable Object in their isolate, so this is how they get task types of
 * their own. Without `inputs` the handler takes any inputs, unparsed. A later registration of
 * the same type replaces it; it takes precedence over a built-in of that type.
 */
export function registerHandler(definition: Omit<HandlerDefinition, "inputs"> & { inputs?: z.ZodType }): void {
  const inputs = definition.inputs ?? null;
  testHandlers.set(definition.type, { ...definition, inputs: inputs ?? z.unknown() });
  registerTestTaskType(definition.type, inputs);
}

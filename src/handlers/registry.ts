import type { z } from "@hono/zod-openapi";
import type { JsonValue, LogLevel, ProgressInput, Task } from "../tasks/model";

/** What a built-in handler gets for one attempt. */
export interface HandlerContext {
  readonly task: Task;
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

export interface HandlerDefinition {
  readonly type: string;
  /** Validates `inputs` at creation; a failure is answered 422. */
  readonly inputs?: z.ZodType;
  run(ctx: HandlerContext): Promise<HandlerResult>;
  /**
   * Optional: runs several attempts of this type of one namespace at once (tasks that arrived in
   * the same queue batch), one outcome per context, in order. An Error outcome fails that attempt
   * alone, as `run` throwing it would; a throw fails them all. Each context reports, and is
   * fenced, on its own: a context whose attempt ended throws TaskEnded from its reports, and the
   * handler gives that outcome up (any value will do). A lone task of the type goes to `run`.
   */
  runBatch?(ctxs: HandlerContext[]): Promise<BatchOutcome[]>;
}

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

const handlers = new Map<string, HandlerDefinition>();

/** Registers a built-in handler; a later registration of the same type replaces it. */
export function registerHandler(definition: HandlerDefinition): void {
  handlers.set(definition.type, definition);
}

export function unregisterHandler(type: string): void {
  handlers.delete(type);
}

export const getHandler = (type: string): HandlerDefinition | undefined => handlers.get(type);

/** A task's inputs parsed for its handler; inputs that do not fit fail the task for good. */
export function parseInputs<T extends z.ZodType>(schema: T, inputs: unknown): z.infer<T> {
  const parsed = schema.safeParse(inputs);
  if (!parsed.success) throw new TaskFailure("invalid_inputs", "the task's inputs do not fit its type", false);
  return parsed.data;
}

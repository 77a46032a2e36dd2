import { z } from "@hono/zod-openapi";

/**
 * The built-in task types of SPEC §9 and the inputs each takes. The Durable Object reads this
 * table to accept a type and check its inputs at create; each handler in src/handlers/ reuses
 * its type's schema, and the runner parses a task's inputs with it before the handler runs.
 */
export const BUILTIN_TASK_INPUTS = {
  object_create: z.object({ object_id: z.string().min(1).max(64), collection_id: z.string().min(1).max(64) }).strict(),
  batch_import: z.object({ bucket_id: z.string().min(1).max(64), staging_id: z.string().min(1).max(64), count: z.number().int().min(1).max(10_000) }).strict(),
  index_rebuild: z.object({ collection_id: z.string().min(1).max(64) }).strict(),
  clustering: z
    .object({
      collection_id: z.string().min(1).max(64),
      k: z.number().int().min(2).max(100),
      max_iterations: z.number().int().min(1).max(1000).optional(),
      seed: z.number().int().optional(),
    })
    .strict(),
  taxonomy_apply: z.object({ collection_id: z.string().min(1).max(64), taxonomy_id: z.string().min(1).max(64), min_score: z.number().min(-1).max(1).optional() }).strict(),
  model_tuning: z
    .object({
      model_id: z.string().min(1).max(64),
      epochs: z.number().int().min(1).max(500).optional(),
      learning_rate: z.number().positive().max(100).optional(),
      holdout_fraction: z.number().min(0).max(0.9).optional(),
      seed: z.number().int().optional(),
    })
    .strict(),
} as const;

export type BuiltinTaskType = keyof typeof BUILTIN_TASK_INPUTS;
/** The parsed inputs of each built-in type. */
export type BuiltinInputs = { [T in BuiltinTaskType]: z.infer<(typeof BUILTIN_TASK_INPUTS)[T]> };

const isBuiltin = (taskType: string): taskType is BuiltinTaskType => Object.hasOwn(BUILTIN_TASK_INPUTS, taskType);

/**
 * Types that tests add at runtime, with their inputs schema (null: any inputs). Tests run the
 * real Worker and Durable Object in their own isolate, so a handler a test registers must be
 * creatable too. Nothing outside tests writes here.
 */
const testTypes = new Map<string, z.ZodType | null>();

/** Test-only: makes `taskType` creatable, as a built-in type is. Called by the handlers' test registration. */
export function registerTestTaskType(taskType: string, inputs: z.ZodType | null): void {
  testTypes.set(taskType, inputs);
}

/** Whether a built-in handler (or a test's) runs tasks of this type. */
export const hasBuiltinHandler = (taskType: string): boolean => testTypes.has(taskType) || isBuiltin(taskType);

/** The schema a built-in type's inputs must fit at create, or null when it takes any inputs (or is not built in). */
export function builtinInputsSchema(taskType: string): z.ZodType | null {
  if (testTypes.has(taskType)) return testTypes.get(taskType) ?? null;
  return isBuiltin(taskType) ? BUILTIN_TASK_INPUTS[taskType] : null;
}

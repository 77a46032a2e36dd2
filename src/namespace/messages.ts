import { z } from "@hono/zod-openapi";

/** The body of a message on the `tasks` queue: which attempt of which task to run. */
export const TaskMessageSchema = z.object({
  namespace_id: z.string().min(1),
  task_id: z.string().min(1),
  attempt: z.number().int().min(1),
  /** Set on the message that continues a checkpointed attempt in a new consumer invocation. */
  slice: z.number().int().min(1).optional(),
});
export type TaskMessage = z.infer<typeof TaskMessageSchema>;

import { z } from "@hono/zod-openapi";

export const ErrorSchema = z
  .object({
    success: z.literal(false),
    status: z.number().int(),
    error: z.object({ type: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .openapi("Error");

/** The error responses every authenticated route may give. */
export const errorResponses = {
  400: { description: "Malformed JSON", content: { "application/json": { schema: ErrorSchema } } },
  401: { description: "Missing or unknown credentials", content: { "application/json": { schema: ErrorSchema } } },
  403: { description: "X-Namespace names another namespace", content: { "application/json": { schema: ErrorSchema } } },
  404: { description: "Not found", content: { "application/json": { schema: ErrorSchema } } },
  409: { description: "Conflict", content: { "application/json": { schema: ErrorSchema } } },
  413: { description: "Body too large", content: { "application/json": { schema: ErrorSchema } } },
  422: { description: "Validation error", content: { "application/json": { schema: ErrorSchema } } },
  429: { description: "Rate limited: see Retry-After and the RateLimit headers", content: { "application/json": { schema: ErrorSchema } } },
} as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const paginated = <T extends z.ZodType>(item: T, name: string) =>
  z
    .object({
      results: z.array(item),
      pagination: z.object({
        limit: z.number().int(),
        next_cursor: z.string().nullable(),
        total: z.number().int().optional(),
      }),
    })
    .openapi(name);

export const TaskIdParam = z.object({
  task_id: z.string().max(128).openapi({ param: { name: "task_id", in: "path" }, example: "tsk_0mio2k1c80f3k2m9x8q7w6e5r4t3y" }),
});

/** Documents the Idempotency-Key header; the idempotency middleware enforces it. */
export const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({ param: { name: "idempotency-key", in: "header" }, description: "Replays the first response of the same request within 24 h" }),
});

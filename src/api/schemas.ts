import { z } from "@hono/zod-openapi";
import { ApiError } from "../errors";
import { base64url } from "../ids";

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

export const PaginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(512).optional(),
  include_total: z.enum(["true", "false"]).optional(),
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

/** A keyset cursor over (created_at, id), opaque to clients. */
export interface Cursor {
  created_at: string;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return base64url(new TextEncoder().encode(JSON.stringify([cursor.created_at, cursor.id])));
}

const CursorTuple = z.tuple([z.string().max(64), z.string().max(64)]);

export function decodeCursor(raw: string | undefined): Cursor | null {
  if (raw === undefined || raw === "") return null;
  try {
    const text = atob(raw.replace(/-/g, "+").replace(/_/g, "/"));
    const parsed = CursorTuple.safeParse(JSON.parse(text));
    if (parsed.success) return { created_at: parsed.data[0], id: parsed.data[1] };
  } catch {
    // fall through to the error below
  }
  throw new ApiError("validation_error", "invalid cursor", { field: "cursor" });
}

export const TaskIdParam = z.object({
  task_id: z.string().max(128).openapi({ param: { name: "task_id", in: "path" }, example: "tsk_0f3k2m9x8q7w6e5r4t3y" }),
});

/** Documents the Idempotency-Key header; the idempotency middleware enforces it. */
export const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({ param: { name: "idempotency-key", in: "header" }, description: "Replays the first response of the same request within 24 h" }),
});

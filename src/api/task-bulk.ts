import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, unwrap } from "../errors";
import { TASK_STATUSES, TaskSchema, TERMINAL_STATUSES } from "../tasks/model";
import { namespaceOf } from "./auth";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { actionRoute, createResourceRoute } from "./routes";
import { errorResponses, json, jsonBody, TaskIdParam } from "./schemas";
import { requestOrigin } from "./env";

const security = [{ apiKey: [] }];
const oneOrMany = <T extends z.ZodTypeAny>(item: T) => z.union([item, z.array(item).min(1).max(100)]);
const listOf = <T>(value: T | T[] | undefined): T[] | undefined => (value === undefined ? undefined : Array.isArray(value) ? value : [value]);
const TaskType = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "must be a task type");
const Time = z.string().datetime({ offset: true });
/** D1's records keep times as toISOString() gives them: filters compare in that form. */
const canonical = (time: string | undefined): string | undefined => (time === undefined ? undefined : new Date(time).toISOString());

const BulkCancelSchema = z
  .object({
    status: oneOrMany(z.enum(TASK_STATUSES)).optional(),
    task_type: oneOrMany(TaskType).optional(),
    parent_task_id: z.string().max(128).optional(),
    concurrency_key: z.string().min(1).max(128).optional(),
    created_before: Time.optional(),
  })
  .strict()
  .openapi("BulkCancel");

const TerminalStatus = z.enum(TERMINAL_STATUSES as unknown as ["completed", "failed", "cancelled"]);
const BulkReplaySchema = z
  .object({
    status: oneOrMany(TerminalStatus),
    task_type: oneOrMany(TaskType).optional(),
    error_code: z.string().min(1).max(200).optional(),
    created_after: Time.optional(),
    created_before: Time.optional(),
  })
  .strict()
  .openapi("BulkReplay");

const BulkReplayResult = z
  .object({
    task_ids: z.array(z.string()),
    replayed: z.number().int(),
    next: BulkReplaySchema.nullable().openapi({ description: "The filter that continues where this call stopped; null when every match was replayed" }),
  })
  .openapi("BulkReplayResult");

const app = apiKeyApp();

app.openapi(
  createRoute({
    method: "post",
    path: "/bulk-cancel",
    tags: ["Tasks"],
    summary: "Cancel every unfinished task matching a filter (in short steps)",
    security,
    request: { body: jsonBody(BulkCancelSchema) },
    responses: { 200: json(z.object({ cancelled: z.number().int() }), "How many tasks were cancelled"), ...errorResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    if (Object.values(body).every((v) => v === undefined)) {
      throw new ApiError("validation_error", "give at least one filter: status, task_type, parent_task_id, concurrency_key or created_before");
    }
    const { cancelled } = await namespaceOf(c).bulkCancel({
      status: listOf(body.status),
      task_type: listOf(body.task_type),
      parent_task_id: body.parent_task_id,
      concurrency_key: body.concurrency_key,
      created_before: body.created_before === undefined ? undefined : Date.parse(body.created_before),
    });
    return c.json({ cancelled }, 200);
  },
);

app.openapi(
  createResourceRoute({ path: "/bulk-replay", tag: "Tasks", summary: "Replay the finished tasks matching a filter (at most 10 000 a call)", security, body: BulkReplaySchema, response: BulkReplayResult, description: "The new tasks" }),
  async (c) => {
    const body = c.req.valid("json");
    const result = unwrap(
      await namespaceOf(c).bulkReplay(
        {
          status: listOf(body.status) ?? [],
          task_type: listOf(body.task_type),
          error_code: body.error_code,
          created_after: canonical(body.created_after),
          created_before: canonical(body.created_before),
        },
        requestOrigin(c),
      ),
    );
    return c.json(result, 201);
  },
);

app.openapi(
  actionRoute({ path: "/{task_id}/replay", tag: "Tasks", summary: "Replay a finished task as a new task", security, params: TaskIdParam, status: 201, response: TaskSchema, description: "The new task, with replay_of_task_id set", idempotent: true }),
  async (c) => {
    const stub = namespaceOf(c);
    const original = unwrap(await stub.findTask(c.req.valid("param").task_id));
    const [task] = unwrap(await stub.replayTasks([original], requestOrigin(c)));
    if (!task) throw new ApiError("internal_error", "the replay was not created");
    return c.json(task, 201);
  },
);

export default app;

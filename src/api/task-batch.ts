import { createRoute, z } from "@hono/zod-openapi";
import { ApiError, unwrap } from "../errors";
import { dataPlaneOperation } from "../tasks/operations";
import { CreateTaskSchema, LIMITS, TaskSchema } from "../tasks/model";
import { jsonOver } from "./json-body";
import { namespaceOf } from "./auth";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";
import { refuseDataPlaneType } from "./tasks";
import { requestOrigin } from "./env";

/** SPEC §5: a batch creates 1–1000 tasks. */
export const MAX_BATCH_TASKS = 1000;

const app = apiKeyApp(LIMITS.batchBodyBytes);

const BatchBody = z
  .object({ tasks: z.array(CreateTaskSchema).min(1).max(MAX_BATCH_TASKS) })
  .strict()
  .openapi("CreateTaskBatch");

app.openapi(
  createRoute({
    method: "post",
    path: "/batch",
    tags: ["Tasks"],
    summary: `Create up to ${MAX_BATCH_TASKS} tasks in one atomic step`,
    description:
      "All tasks are created, in the order given, or none: the first bad item is named by `details.index` (422, or 413 for " +
      "inputs beyond 64 KiB). The quota of unfinished tasks applies to the whole batch. One Idempotency-Key covers it all.",
    security: [{ apiKey: [] }],
    middleware: idempotent,
    request: { headers: IdempotencyHeader, body: jsonBody(BatchBody) },
    responses: { 201: json(z.object({ tasks: z.array(TaskSchema) }), "The tasks, in the order given"), ...errorResponses },
  }),
  async (c) => {
    const { tasks: inputs } = c.req.valid("json");
    const stub = namespaceOf(c);
    // The data-plane refusal asks the object about processors: once per such type, not per item.
    const checked = new Set<string>();
    for (const [index, input] of inputs.entries()) {
      if (input.inputs !== undefined && jsonOver(input.inputs, LIMITS.inputsBytes)) {
        throw new ApiError("payload_too_large", `inputs exceed ${LIMITS.inputsBytes} bytes of JSON`, { index, field: "inputs" });
      }
      if (dataPlaneOperation(input.task_type) === undefined || checked.has(input.task_type)) continue;
      checked.add(input.task_type);
      try {
        await refuseDataPlaneType(stub, input.task_type);
      } catch (err) {
        if (err instanceof ApiError) throw new ApiError(err.type, err.message, { ...(err.details as object), index });
        throw err;
      }
    }
    const batch = c.get("idempotency") ?? { key: crypto.randomUUID(), requestHash: "" };
    const tasks = unwrap(await stub.createTaskBatch(inputs, requestOrigin(c), batch));
    return c.json({ tasks }, 201);
  },
  // A malformed item is named by its index too, as every other refusal of an item is.
  (result) => {
    if (result.success) return;
    const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message, code: i.code }));
    const indexes = result.error.issues.flatMap((i) => (i.path[0] === "tasks" && typeof i.path[1] === "number" ? [i.path[1]] : []));
    const index = indexes.length > 0 ? Math.min(...indexes) : undefined;
    const first = issues[0];
    const message = first ? `${first.path || "body"}: ${first.message}` : "invalid request";
    throw new ApiError("validation_error", message, index === undefined ? { issues } : { index, issues });
  },
);

export default app;

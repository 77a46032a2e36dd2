import { createRoute, z } from "@hono/zod-openapi";
import type { NamespaceStub } from "../namespace/stub";
import { ApiError, unwrap } from "../errors";
import { dataPlaneOperation } from "../tasks/operations";
import { taskEtag } from "../tasks/etag";
import { CreateTaskSchema, LIMITS, LogLineSchema, StatsSchema, TaskSchema } from "../tasks/model";
import { jsonOver } from "./json-body";
import { namespaceOf } from "./auth";
import { idempotent } from "./idempotency";
import { apiKeyApp } from "./gate";
import { actionRoute, createResourceRoute, deleteRoute } from "./routes";
import { errorResponses, json, paginated, TaskIdParam } from "./schemas";
import { listRoute, PageQuery, servePage } from "./list";
import { LOG_CURSOR, taskLogPage } from "./task-logs";
import { ListBody, listFromBody, listFromQuery, listTasks, TaskFilters } from "./task-list";
import bulk from "./task-bulk";
import { requestOrigin } from "./env";

const security = [{ apiKey: [] }];

/**
 * The data-plane types are created by their own operations, which check what the task will
 * touch (SPEC §5); a generic create naming one gets 422 naming that operation, unless the
 * namespace runs the type on its own processor. Every generic create path calls this.
 */
export async function refuseDataPlaneType(stub: Pick<NamespaceStub, "getProcessor">, taskType: string): Promise<void> {
  const operation = dataPlaneOperation(taskType);
  if (operation === undefined || (await stub.getProcessor(taskType)).ok) return;
  throw new ApiError("validation_error", `task_type "${taskType}" is created by ${operation}, not by a generic task create`, { field: "task_type", operation });
}

const WaitQuery = z.object({
  wait: z.coerce
    .number()
    .int()
    .min(0)
    .max(60)
    .optional()
    .openapi({ description: "Long-poll: seconds to wait for a change (0–60)" }),
});
const IfNoneMatchHeader = z.object({
  "if-none-match": z.string().max(100).optional().openapi({ param: { name: "if-none-match", in: "header" }, description: "The ETag last seen" }),
});
const EtagHeader = z.object({ ETag: z.string().openapi({ description: "Changes whenever the task does" }) });
const app = apiKeyApp();

app.openapi(
  createRoute({
    method: "get",
    path: "/stats",
    tags: ["Tasks"],
    summary: "Counts of unfinished tasks and the namespace's limits",
    security,
    responses: { 200: json(StatsSchema, "Current counts"), ...errorResponses },
  }),
  async (c) => c.json(await namespaceOf(c).stats(), 200),
);

const TaskList = paginated(TaskSchema, "TaskList");

app.openapi(
  listRoute({ path: "/", tag: "Tasks", summary: "List tasks, newest first", security, item: TaskSchema, name: "TaskList", filters: TaskFilters }),
  async (c) => c.json(await listTasks(c, listFromQuery(c.req.valid("query"))), 200),
);

app.openapi(
  createRoute({
    method: "post",
    path: "/list",
    tags: ["Tasks"],
    summary: "List tasks (Mixpeek-compatible: status names, sort)",
    security,
    request: { query: PageQuery, body: { required: false, content: { "application/json": { schema: ListBody } } } },
    responses: { 200: json(TaskList, "A page of tasks"), ...errorResponses },
  }),
  async (c) => c.json(await listTasks(c, listFromBody(c.req.valid("json") ?? {}, c.req.valid("query"))), 200),
);

app.openapi(
  createResourceRoute({ path: "/", tag: "Tasks", summary: "Create a task", security, body: CreateTaskSchema, response: TaskSchema, description: "The task, admitted at once when a slot is free" }),
  async (c) => {
    const input = c.req.valid("json");
    if (input.inputs !== undefined && jsonOver(input.inputs, LIMITS.inputsBytes)) {
      throw new ApiError("payload_too_large", `inputs exceed ${LIMITS.inputsBytes} bytes of JSON`, { field: "inputs" });
    }
    const stub = namespaceOf(c);
    await refuseDataPlaneType(stub, input.task_type);
    const task = unwrap(await stub.createTask(input, requestOrigin(c), c.get("idempotency")));
    return c.json(task, 201);
  },
);

app.openapi(
  createRoute({
    method: "get",
    path: "/{task_id}",
    tags: ["Tasks"],
    summary: "Get a task; with `wait`, long-poll until it changes",
    description:
      "With `wait` (seconds, at most 60) the answer comes as soon as the task changes or is finished, else at the deadline " +
      "with its current state. Send the ETag last seen as If-None-Match to be answered at once if the task has changed since.",
    security,
    request: { params: TaskIdParam, query: WaitQuery, headers: IfNoneMatchHeader },
    responses: { 200: { ...json(TaskSchema, "The task"), headers: EtagHeader }, ...errorResponses },
  }),
  async (c) => {
    const taskId = c.req.valid("param").task_id;
    const { wait } = c.req.valid("query");
    const stub = namespaceOf(c);
    const task = unwrap(
      wait === undefined || wait === 0
        ? await stub.findTask(taskId)
        : await stub.waitForTask(taskId, wait * 1000, c.req.valid("header")["if-none-match"] ?? null),
    );
    c.header("ETag", taskEtag(task));
    c.header("Cache-Control", "no-store");
    return c.json(task, 200);
  },
);

app.openapi(
  actionRoute({ path: "/{task_id}/cancel", tag: "Tasks", summary: "Cancel a task (a finished task is returned unchanged)", security, params: TaskIdParam, status: 200, response: TaskSchema, description: "The task" }),
  async (c) => c.json(unwrap(await namespaceOf(c).cancelTask(c.req.valid("param").task_id)), 200),
);

app.openapi(
  deleteRoute({ path: "/{task_id}", tag: "Tasks", summary: "Kill a task (Mixpeek-compatible; idempotent, also for an unknown id)", security, params: TaskIdParam }),
  async (c) => {
    const taskId = c.req.valid("param").task_id;
    const result = await namespaceOf(c).cancelTask(taskId);
    const message = !result.ok
      ? `task ${taskId} not found; nothing to kill`
      : `task ${taskId} is ${result.value.status}`;
    return c.json({ success: true as const, message }, 200);
  },
);

app.openapi(
  listRoute({ path: "/{task_id}/logs", tag: "Tasks", summary: "A task's log lines, oldest first", security, item: LogLineSchema, name: "LogLineList", params: TaskIdParam }),
  async (c) => {
    const { task_id } = c.req.valid("param");
    return c.json(await servePage(c.req.valid("query"), LOG_CURSOR, (req) => taskLogPage(c, task_id, req)), 200);
  },
);

// Bulk cancel, replay and bulk replay (SPEC §5).
app.route("/", bulk);

export default app;

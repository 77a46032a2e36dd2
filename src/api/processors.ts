import { createRoute, z } from "@hono/zod-openapi";
import { byMillis } from "../cursor";
import { ApiError, unwrap } from "../errors";
import { MAX_LEASE_TASKS, MAX_LEASE_WAIT_SECONDS } from "../namespace/contract";
import { TASK_TYPE_PATTERN, TaskSchema } from "../tasks/model";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import { namespaceOf } from "./auth";
import { apiKeyApp } from "./gate";
import { listRoute, servePage } from "./list";
import { getRoute, deleteRoute } from "./routes";
import { errorResponses, json, jsonBody } from "./schemas";
import { requestOrigin } from "./env";

const security = [{ apiKey: [] }];
const app = apiKeyApp();
const PROCESSOR_CURSOR = byMillis("processors");

const ProcessorSchema = z
  .object({
    task_type: z.string(),
    mode: z.enum(["push", "pull"]).openapi({ description: "push: the queue consumer POSTs each task to url; pull: workers lease tasks" }),
    url: z.string().nullable().openapi({ description: "null in pull mode" }),
    lease_seconds: z.number().int(),
    secret: z.string().optional().openapi({ description: "Only in the response that created the processor" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Processor");

const TaskTypeParam = z.object({
  task_type: z.string().regex(TASK_TYPE_PATTERN, "must match ^[a-z][a-z0-9_]{0,63}$").openapi({ param: { name: "task_type", in: "path" } }),
});

const PutProcessorSchema = z
  .object({
    mode: z.enum(["push", "pull"]).optional().openapi({ description: "Default push" }),
    url: z.string().max(2048).optional().openapi({ description: "Required in push mode, refused in pull mode" }),
    lease_seconds: z.number().int().min(5).max(3600).optional(),
  })
  .strict()
  .openapi("PutProcessor");

const LeaseBody = z
  .object({
    max_tasks: z.number().int().min(1).max(MAX_LEASE_TASKS).optional().openapi({ description: "Default 10" }),
    wait_seconds: z.number().int().min(0).max(MAX_LEASE_WAIT_SECONDS).optional().openapi({ description: "Long-poll up to this long for a first task; default 0" }),
  })
  .strict()
  .openapi("LeaseRequest");

const LeaseSchema = z
  .object({
    task: TaskSchema,
    attempt: z.number().int(),
    lease_expires_at: z.string(),
    timeout_at: z.string(),
    callback: z.object({ url: z.string(), token: z.string() }),
  })
  .openapi("Lease");

app.openapi(
  createRoute({
    method: "put",
    path: "/{task_type}",
    tags: ["Processors"],
    summary: "Hand a task type to an external processor",
    security,
    request: { params: TaskTypeParam, body: jsonBody(PutProcessorSchema) },
    responses: {
      200: json(ProcessorSchema, "Updated"),
      201: json(ProcessorSchema, "Created; the response carries the signing secret"),
      ...errorResponses,
    },
  }),
  async (c) => {
    const { task_type } = c.req.valid("param");
    const body = c.req.valid("json");
    const mode = body.mode ?? "push";
    let url: string | null = null;
    if (mode === "pull") {
      if (body.url !== undefined) throw new ApiError("validation_error", "a pull processor has no url: its workers lease tasks", { field: "url" });
    } else {
      if (body.url === undefined) throw new ApiError("validation_error", "url is required (or send mode \"pull\")", { field: "url" });
      const verdict = checkOutboundUrl(body.url, allowPrivateUrls(c.env));
      if (!verdict.ok) throw new ApiError("validation_error", `url ${verdict.reason}`, { field: "url" });
      url = verdict.url.toString();
    }
    const { processor, secret } = unwrap(await namespaceOf(c).putProcessor(task_type, url, body.lease_seconds ?? 300, mode));
    return secret ? c.json({ ...processor, secret }, 201) : c.json(processor, 200);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Processors", summary: "List processors, newest first", security, item: ProcessorSchema, name: "ProcessorList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), PROCESSOR_CURSOR, (req) => namespaceOf(c).listProcessors(req)), 200),
);

app.openapi(
  getRoute({ path: "/{task_type}", tag: "Processors", summary: "Get a processor", security, params: TaskTypeParam, response: ProcessorSchema, description: "The processor" }),
  async (c) => c.json(unwrap(await namespaceOf(c).getProcessor(c.req.valid("param").task_type)), 200),
);

app.openapi(
  deleteRoute({ path: "/{task_type}", tag: "Processors", summary: "Remove a processor", security, params: TaskTypeParam }),
  async (c) => {
    const { task_type } = c.req.valid("param");
    if (!(await namespaceOf(c).deleteProcessor(task_type))) throw new ApiError("not_found", `no processor for task_type "${task_type}"`);
    return c.json({ success: true as const, message: `processor for ${task_type} removed` }, 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{task_type}/lease",
    tags: ["Processors"],
    summary: "Lease queued tasks of a pull-mode type",
    description:
      "Takes up to max_tasks admitted tasks of the type, highest priority then oldest first, each made processing under its own " +
      "lease and callback token. With wait_seconds, answers as soon as at least one is there, else with [] at the deadline.",
    security,
    request: { params: TaskTypeParam, body: jsonBody(LeaseBody) },
    responses: { 200: json(z.object({ leases: z.array(LeaseSchema) }), "The leased tasks"), ...errorResponses },
  }),
  async (c) => {
    const { task_type } = c.req.valid("param");
    const body = c.req.valid("json");
    const leases = unwrap(
      await namespaceOf(c).leaseTasks(task_type, body.max_tasks ?? 10, (body.wait_seconds ?? 0) * 1000, requestOrigin(c)),
    );
    return c.json({ leases }, 200);
  },
);

export default app;

import { createRoute, z } from "@hono/zod-openapi";
import { byMillis } from "../cursor";
import { ApiError, unwrap } from "../errors";
import { TASK_TYPE_PATTERN } from "../tasks/model";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import { namespaceOf } from "./auth";
import { newApp } from "./env";
import { listRoute, servePage } from "./list";
import { errorResponses, json, jsonBody } from "./schemas";

const security = [{ apiKey: [] }];
const app = newApp();
const PROCESSOR_CURSOR = byMillis("processors");

const ProcessorSchema = z
  .object({
    task_type: z.string(),
    url: z.string(),
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
  .object({ url: z.string().max(2048), lease_seconds: z.number().int().min(5).max(3600).optional() })
  .strict()
  .openapi("PutProcessor");

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
    const verdict = checkOutboundUrl(body.url, allowPrivateUrls(c.env));
    if (!verdict.ok) throw new ApiError("validation_error", `url ${verdict.reason}`, { field: "url" });
    const { processor, secret } = unwrap(await namespaceOf(c).putProcessor(task_type, verdict.url.toString(), body.lease_seconds ?? 300));
    return secret ? c.json({ ...processor, secret }, 201) : c.json(processor, 200);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Processors", summary: "List processors, newest first", security, item: ProcessorSchema, name: "ProcessorList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), PROCESSOR_CURSOR, (req) => namespaceOf(c).listProcessors(req)), 200),
);

app.openapi(
  createRoute({
    method: "get",
    path: "/{task_type}",
    tags: ["Processors"],
    summary: "Get a processor",
    security,
    request: { params: TaskTypeParam },
    responses: { 200: json(ProcessorSchema, "The processor"), ...errorResponses },
  }),
  async (c) => c.json(unwrap(await namespaceOf(c).getProcessor(c.req.valid("param").task_type)), 200),
);

app.openapi(
  createRoute({
    method: "delete",
    path: "/{task_type}",
    tags: ["Processors"],
    summary: "Remove a processor",
    security,
    request: { params: TaskTypeParam },
    responses: { 200: json(z.object({ success: z.literal(true), message: z.string() }), "Removed"), ...errorResponses },
  }),
  async (c) => {
    const { task_type } = c.req.valid("param");
    if (!(await namespaceOf(c).deleteProcessor(task_type))) throw new ApiError("not_found", `no processor for task_type "${task_type}"`);
    return c.json({ success: true as const, message: `processor for ${task_type} removed` }, 200);
  },
);

export default app;

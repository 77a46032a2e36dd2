import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { namespaceStub } from "../namespace/stub";
import { ApiError, unwrap } from "../errors";
import { MAX_BATCH_REPORTS, type Report } from "../namespace/contract";
import { LIMITS, LOG_LEVELS, ProgressInputSchema, TaskSchema } from "../tasks/model";
import { jsonOver } from "./json-body";
import { namespaceOf } from "./auth";
import type { AppEnv } from "./env";
import { apiKeyApp, callbackApp } from "./gate";
import { errorResponses, json, jsonBody, TaskIdParam } from "./schemas";

const security = [{ callbackToken: [] }];
const app = callbackApp();

/**
 * Sends a report to the attempt's NamespaceDO, which fences it by the token's hash. The gate
 * (callback-auth.ts) has checked the token and its namespace before the body was read.
 */
async function report(c: Context<AppEnv>, taskId: string, body: Report) {
  const callback = c.get("callback");
  if (!callback) throw new ApiError("unauthorized", "invalid callback token");
  return unwrap(await namespaceStub(c.env, callback.namespaceId).report(taskId, callback.token, body));
}

const AckSchema = z
  .object({ status: z.string(), lease_expires_at: z.string().nullable() })
  .openapi("CallbackAck");

const route = <B extends z.ZodType, R extends z.ZodType>(path: string, summary: string, body: B, response: R) =>
  createRoute({
    method: "post",
    path: `/{task_id}/callback/${path}`,
    tags: ["Processor callbacks"],
    summary,
    security,
    request: { params: TaskIdParam, body: jsonBody(body) },
    responses: { 200: json(response, "Accepted"), ...errorResponses },
  });

app.openapi(route("progress", "Report progress and renew the lease", ProgressInputSchema, AckSchema), async (c) => {
  const ack = await report(c, c.req.valid("param").task_id, { kind: "progress", progress: c.req.valid("json") });
  return c.json({ status: ack.status, lease_expires_at: ack.lease_expires_at }, 200);
});

const LogsBody = z
  .object({
    lines: z
      .array(z.object({ level: z.enum(LOG_LEVELS).optional(), message: z.string().max(1024 * 1024) }).strict())
      .min(1)
      .max(LIMITS.logLinesPerCall),
  })
  .strict()
  .openapi("CallbackLogs");

app.openapi(route("logs", `Add up to ${LIMITS.logLinesPerCall} log lines`, LogsBody, AckSchema), async (c) => {
  const ack = await report(c, c.req.valid("param").task_id, { kind: "logs", lines: c.req.valid("json").lines });
  return c.json({ status: ack.status, lease_expires_at: ack.lease_expires_at }, 200);
});

const CompleteBody = z.object({ outputs: z.record(z.string(), z.unknown()).optional() }).strict().openapi("CallbackComplete");

app.openapi(route("complete", "Complete the task with its outputs", CompleteBody, TaskSchema), async (c) => {
  const outputs = c.req.valid("json").outputs ?? {};
  if (jsonOver(outputs, LIMITS.outputsBytes)) {
    throw new ApiError("payload_too_large", `outputs exceed ${LIMITS.outputsBytes} bytes of JSON`, { field: "outputs" });
  }
  const ack = await report(c, c.req.valid("param").task_id, { kind: "complete", outputs });
  return c.json(ack.task, 200);
});

const FailBody = z
  .object({
    error: z.object({ code: z.string().min(1).max(64), message: z.string().max(LIMITS.errorMessageChars) }).strict(),
    retryable: z.boolean().optional(),
  })
  .strict()
  .openapi("CallbackFail");

app.openapi(route("fail", "Fail the attempt (retried unless retryable is false)", FailBody, TaskSchema), async (c) => {
  const body = c.req.valid("json");
  const ack = await report(c, c.req.valid("param").task_id, { kind: "fail", error: body.error, retryable: body.retryable ?? true });
  return c.json(ack.task, 200);
});

/** `POST /v1/callbacks`: many reports of pull (or push) attempts in one request, with the namespace's API key. */
export const batchCallbacks = apiKeyApp(LIMITS.batchBodyBytes);

const token = z.string().min(1).max(200).openapi({ description: "callback.token of the attempt" });
const ReportItem = z
  .discriminatedUnion("type", [
    z.object({ token, type: z.literal("progress"), ...ProgressInputSchema.shape }).strict(),
    z.object({ token, type: z.literal("logs"), ...LogsBody.shape }).strict(),
    z.object({ token, type: z.literal("complete"), ...CompleteBody.shape }).strict(),
    z.object({ token, type: z.literal("fail"), ...FailBody.shape }).strict(),
  ])
  .openapi("CallbackReport");
type ReportItem = z.infer<typeof ReportItem>;

const BatchResult = z
  .object({
    task_id: z.string().nullable(),
    status: z.union([z.literal(200), z.literal(401), z.literal(409)]),
    task: TaskSchema.optional(),
    lease_expires_at: z.string().nullable().optional().openapi({ description: "While the attempt goes on: when its lease now ends" }),
    error: z.object({ type: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
  })
  .openapi("CallbackResult");

function toReport(item: ReportItem, index: number): Report {
  switch (item.type) {
    case "progress": {
      const { token: _token, type: _type, ...progress } = item;
      return { kind: "progress", progress };
    }
    case "logs":
      return { kind: "logs", lines: item.lines };
    case "complete": {
      const outputs = item.outputs ?? {};
      if (jsonOver(outputs, LIMITS.outputsBytes)) {
        throw new ApiError("payload_too_large", `outputs exceed ${LIMITS.outputsBytes} bytes of JSON`, { index, field: "outputs" });
      }
      return { kind: "complete", outputs };
    }
    case "fail":
      return { kind: "fail", error: item.error, retryable: item.retryable ?? true };
  }
}

batchCallbacks.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Processor callbacks"],
    summary: `Send up to ${MAX_BATCH_REPORTS} attempt reports at once`,
    description:
      "Each report is fenced and applied on its own, exactly as its single callback would be; results come in the order given: " +
      "200 with the task, 401 for an unknown token, 409 when the attempt has ended.",
    security: [{ apiKey: [] }],
    request: { body: jsonBody(z.object({ reports: z.array(ReportItem).min(1).max(MAX_BATCH_REPORTS) }).strict().openapi("CallbackBatch")) },
    responses: { 200: json(z.object({ results: z.array(BatchResult) }), "One result a report, in order"), ...errorResponses },
  }),
  async (c) => {
    const reports = c.req.valid("json").reports.map((item, index) => ({ token: item.token, report: toReport(item, index) }));
    return c.json({ results: await namespaceOf(c).reportBatch(reports) }, 200);
  },
);

export default app;

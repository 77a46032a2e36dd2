import { createRoute, z } from "@hono/zod-openapi";
import { byMillis } from "../cursor";
import { listDeliveries } from "../db/deliveries";
import type { PageRequest } from "../db/keyset";
import { ApiError, unwrap } from "../errors";
import { EVENT_TYPES } from "../webhooks/events";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import { namespaceOf } from "./auth";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { listRoute, servePage } from "./list";
import { actionRoute, createResourceRoute, deleteRoute, getRoute } from "./routes";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";

const security = [{ apiKey: [] }];
const app = apiKeyApp();
const WEBHOOK_CURSOR = byMillis("webhooks");
const DELIVERY_CURSOR = byMillis("webhook_deliveries");

const WebhookSchema = z
  .object({
    webhook_id: z.string(),
    url: z.string(),
    event_types: z.array(z.string()),
    description: z.string().nullable(),
    is_active: z.boolean(),
    disabled_reason: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Webhook");
const WebhookWithSecret = WebhookSchema.extend({ secret: z.string() }).openapi("WebhookWithSecret");

const DeliverySchema = z
  .object({
    delivery_id: z.string(),
    webhook_id: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "succeeded", "failed"]),
    attempts: z.number().int(),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    next_attempt_at: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("WebhookDelivery");

const EventTypes = z
  .array(z.enum(["*", ...EVENT_TYPES]))
  .min(1)
  .max(EVENT_TYPES.length)
  .refine((types) => !types.includes("*") || types.length === 1, "\"*\" stands alone")
  .transform((types) => [...new Set(types)]);

const CreateWebhook = z
  .object({ url: z.string().max(2048), event_types: EventTypes, description: z.string().max(500).optional() })
  .strict()
  .openapi("CreateWebhook");

const UpdateWebhook = z
  .object({
    url: z.string().max(2048).optional(),
    event_types: EventTypes.optional(),
    description: z.string().max(500).nullable().optional(),
    is_active: z.boolean().optional(),
  })
  .strict()
  .openapi("UpdateWebhook");

const WebhookParam = z.object({ webhook_id: z.string().max(128).openapi({ param: { name: "webhook_id", in: "path" } }) });

function checkUrl(url: string, env: Env): string {
  const verdict = checkOutboundUrl(url, allowPrivateUrls(env));
  if (!verdict.ok) throw new ApiError("validation_error", `url ${verdict.reason}`, { field: "url" });
  return verdict.url.toString();
}

app.openapi(
  createResourceRoute({ path: "/", tag: "Webhooks", summary: "Register a webhook endpoint (the secret is shown only here and on rotation)", security, body: CreateWebhook, response: WebhookWithSecret, description: "The endpoint and its signing secret" }),
  async (c) => {
    const body = c.req.valid("json");
    const url = checkUrl(body.url, c.env);
    const { webhook, secret } = unwrap(await namespaceOf(c).createWebhook({ url, event_types: body.event_types, description: body.description ?? null }));
    return c.json({ ...webhook, secret }, 201);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Webhooks", summary: "List webhook endpoints, newest first", security, item: WebhookSchema, name: "WebhookList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), WEBHOOK_CURSOR, (req) => namespaceOf(c).listWebhooks(req)), 200),
);

app.openapi(
  getRoute({ path: "/{webhook_id}", tag: "Webhooks", summary: "Get a webhook endpoint", security, params: WebhookParam, response: WebhookSchema, description: "The endpoint" }),
  async (c) => c.json(unwrap(await namespaceOf(c).getWebhook(c.req.valid("param").webhook_id)), 200),
);

app.openapi(
  createRoute({
    method: "patch",
    path: "/{webhook_id}",
    tags: ["Webhooks"],
    summary: "Change an endpoint's url, event types, description or activation",
    security,
    request: { params: WebhookParam, body: jsonBody(UpdateWebhook) },
    responses: { 200: json(WebhookSchema, "The endpoint"), ...errorResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const patch = { ...body, ...(body.url !== undefined ? { url: checkUrl(body.url, c.env) } : {}) };
    return c.json(unwrap(await namespaceOf(c).updateWebhook(c.req.valid("param").webhook_id, patch)), 200);
  },
);

app.openapi(
  deleteRoute({ path: "/{webhook_id}", tag: "Webhooks", summary: "Delete an endpoint (its pending deliveries fail)", security, params: WebhookParam }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    if (!(await namespaceOf(c).deleteWebhook(webhook_id))) throw new ApiError("not_found", `webhook ${webhook_id} not found`);
    return c.json({ success: true as const, message: `webhook ${webhook_id} deleted` }, 200);
  },
);

app.openapi(
  actionRoute({ path: "/{webhook_id}/rotate-secret", tag: "Webhooks", summary: "Rotate the signing secret (the old one also signs for 24 h)", security, params: WebhookParam, status: 200, response: WebhookWithSecret, description: "The endpoint and its new secret" }),
  async (c) => {
    const { webhook, secret } = unwrap(await namespaceOf(c).rotateWebhookSecret(c.req.valid("param").webhook_id));
    return c.json({ ...webhook, secret }, 200);
  },
);

app.openapi(
  actionRoute({ path: "/{webhook_id}/test", tag: "Webhooks", summary: "Send a webhook.test event to this endpoint", security, params: WebhookParam, status: 202, response: DeliverySchema, description: "The delivery, pending", idempotent: true }),
  async (c) => c.json(unwrap(await namespaceOf(c).testWebhook(c.req.valid("param").webhook_id)), 202),
);

app.openapi(
  listRoute({ path: "/{webhook_id}/deliveries", tag: "Webhooks", summary: "The endpoint's deliveries, newest first", security, item: DeliverySchema, name: "DeliveryList", params: WebhookParam }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    const stub = namespaceOf(c);
    unwrap(await stub.getWebhook(webhook_id));
    const read = async (req: PageRequest<[number, string]>) => {
      // A walk's first page flushes the outbox, so every delivery made before it is listed.
      if (!req.after) await stub.flushNow();
      return listDeliveries(c.env.DB, c.get("principal").namespace_id, webhook_id, req);
    };
    return c.json(await servePage(c.req.valid("query"), DELIVERY_CURSOR, read), 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    tags: ["Webhooks"],
    summary: "Deliver an event again (same webhook-id), as a new delivery",
    security,
    middleware: idempotent,
    request: { params: WebhookParam.extend({ delivery_id: z.string().max(128) }), headers: IdempotencyHeader },
    responses: { 202: json(DeliverySchema, "The new delivery, pending"), ...errorResponses },
  }),
  async (c) => {
    const { webhook_id, delivery_id } = c.req.valid("param");
    return c.json(unwrap(await namespaceOf(c).redeliver(webhook_id, delivery_id)), 202);
  },
);

export default app;

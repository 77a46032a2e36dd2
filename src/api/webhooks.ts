import { createRoute, z } from "@hono/zod-openapi";
import { listDeliveries } from "../db/deliveries";
import { ApiError, unwrap } from "../errors";
import { EVENT_TYPES } from "../namespace/webhooks";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import { namespaceOf } from "./auth";
import { newApp } from "./env";
import { idempotent } from "./idempotency";
import { decodeCursor, encodeCursor, errorResponses, IdempotencyHeader, json, jsonBody, paginated, PaginationQuery } from "./schemas";

const security = [{ apiKey: [] }];
const app = newApp();

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
  createRoute({
    method: "post",
    path: "/",
    tags: ["Webhooks"],
    summary: "Register a webhook endpoint (the secret is shown only here and on rotation)",
    security,
    middleware: idempotent,
    request: { headers: IdempotencyHeader, body: jsonBody(CreateWebhook) },
    responses: { 201: json(WebhookWithSecret, "The endpoint and its signing secret"), ...errorResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const url = checkUrl(body.url, c.env);
    const { webhook, secret } = unwrap(await namespaceOf(c).createWebhook({ url, event_types: body.event_types, description: body.description ?? null }));
    return c.json({ ...webhook, secret }, 201);
  },
);

app.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Webhooks"],
    summary: "List webhook endpoints, newest first",
    security,
    request: { query: PaginationQuery },
    responses: { 200: json(paginated(WebhookSchema, "WebhookList"), "Endpoints"), ...errorResponses },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const after = decodeCursor(q.cursor);
    const all = await namespaceOf(c).listWebhooks();
    // Newest first by (created_at, webhook_id): the page starts after the cursor's position,
    // which holds even when the webhook it names has been deleted since.
    const start = after ? all.findIndex((w) => w.created_at < after.created_at || (w.created_at === after.created_at && w.webhook_id < after.id)) : 0;
    const page = start < 0 ? [] : all.slice(start, start + q.limit);
    const last = page[page.length - 1];
    const next = start >= 0 && start + q.limit < all.length && last ? encodeCursor({ created_at: last.created_at, id: last.webhook_id }) : null;
    return c.json({ results: page, pagination: { limit: q.limit, next_cursor: next, ...(q.include_total === "true" ? { total: all.length } : {}) } }, 200);
  },
);

app.openapi(
  createRoute({
    method: "get",
    path: "/{webhook_id}",
    tags: ["Webhooks"],
    summary: "Get a webhook endpoint",
    security,
    request: { params: WebhookParam },
    responses: { 200: json(WebhookSchema, "The endpoint"), ...errorResponses },
  }),
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
  createRoute({
    method: "delete",
    path: "/{webhook_id}",
    tags: ["Webhooks"],
    summary: "Delete an endpoint (its pending deliveries fail)",
    security,
    request: { params: WebhookParam },
    responses: { 200: json(z.object({ success: z.literal(true), message: z.string() }), "Deleted"), ...errorResponses },
  }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    if (!(await namespaceOf(c).deleteWebhook(webhook_id))) throw new ApiError("not_found", `webhook ${webhook_id} not found`);
    return c.json({ success: true as const, message: `webhook ${webhook_id} deleted` }, 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{webhook_id}/rotate-secret",
    tags: ["Webhooks"],
    summary: "Rotate the signing secret (the old one also signs for 24 h)",
    security,
    request: { params: WebhookParam },
    responses: { 200: json(WebhookWithSecret, "The endpoint and its new secret"), ...errorResponses },
  }),
  async (c) => {
    const { webhook, secret } = unwrap(await namespaceOf(c).rotateWebhookSecret(c.req.valid("param").webhook_id));
    return c.json({ ...webhook, secret }, 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{webhook_id}/test",
    tags: ["Webhooks"],
    summary: "Send a webhook.test event to this endpoint",
    security,
    middleware: idempotent,
    request: { params: WebhookParam, headers: IdempotencyHeader },
    responses: { 202: json(DeliverySchema, "The delivery, pending"), ...errorResponses },
  }),
  async (c) => c.json(unwrap(await namespaceOf(c).testWebhook(c.req.valid("param").webhook_id)), 202),
);

app.openapi(
  createRoute({
    method: "get",
    path: "/{webhook_id}/deliveries",
    tags: ["Webhooks"],
    summary: "The endpoint's deliveries, newest first",
    security,
    request: { params: WebhookParam, query: PaginationQuery.omit({ include_total: true }) },
    responses: { 200: json(paginated(DeliverySchema, "DeliveryList"), "Deliveries"), ...errorResponses },
  }),
  async (c) => {
    const { webhook_id } = c.req.valid("param");
    const q = c.req.valid("query");
    const stub = namespaceOf(c);
    unwrap(await stub.getWebhook(webhook_id));
    const after = decodeDeliveryCursor(q.cursor);
    if (!after) await stub.flushNow();
    const page = await listDeliveries(c.env.DB, c.get("principal").namespace_id, webhook_id, q.limit, after);
    const next = page.next ? encodeCursor({ created_at: String(page.next.created_ms), id: page.next.id }) : null;
    return c.json({ results: page.deliveries, pagination: { limit: q.limit, next_cursor: next } }, 200);
  },
);

function decodeDeliveryCursor(raw: string | undefined): { created_ms: number; id: string } | null {
  const cursor = decodeCursor(raw);
  if (!cursor) return null;
  const createdMs = Number(cursor.created_at);
  if (!Number.isSafeInteger(createdMs)) throw new ApiError("validation_error", "invalid cursor", { field: "cursor" });
  return { created_ms: createdMs, id: cursor.id };
}

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

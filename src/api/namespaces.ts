import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { namespaceStub } from "../namespace/stub";
import { insertKey, listKeys, revokeKey } from "../db/keys";
import {
  findNamespace,
  insertNamespace,
  listNamespaces,
  type Namespace,
  updateNamespaceSettings,
} from "../db/namespaces";
import { byIsoTime } from "../cursor";
import { ApiError, createUnique } from "../errors";
import { newApiKey, newId } from "../ids";
import { DEFAULT_SETTINGS, SettingsOutputSchema, SettingsSchema } from "../tasks/model";
import { isoNow } from "../time";
import type { AppEnv } from "./env";
import { adminApp } from "./gate";
import { idempotent } from "./idempotency";
import { listRoute, servePage } from "./list";
import { createResourceRoute, getRoute } from "./routes";
import { errorResponses, json, jsonBody } from "./schemas";

const NamespaceSchema = z
  .object({
    namespace_id: z.string(),
    namespace_name: z.string(),
    settings: SettingsOutputSchema,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Namespace");

const CreateNamespaceSchema = z
  .object({
    namespace_name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1–63 lowercase letters, digits, '_' or '-'")
      .refine((name) => !name.startsWith("ns_"), "must not start with ns_ (reserved for ids)"),
    settings: SettingsSchema.optional(),
  })
  .strict()
  .openapi("CreateNamespace");

const ApiKeySchema = z
  .object({ key_id: z.string(), name: z.string().nullable(), created_at: z.string(), revoked_at: z.string().nullable() })
  .openapi("ApiKey");

const NamespaceParam = z.object({ namespace: z.string().max(128).openapi({ param: { name: "namespace", in: "path" } }) });
const security = [{ adminToken: [] }];

const app = adminApp();
const NAMESPACE_CURSOR = byIsoTime("namespaces");
const API_KEY_CURSOR = byIsoTime("api_keys");

async function mustFindNamespace(c: Context<AppEnv>, idOrName: string): Promise<Namespace> {
  const ns = await findNamespace(c.env.DB, idOrName);
  if (!ns) throw new ApiError("not_found", `namespace ${idOrName} not found`);
  return ns;
}

app.openapi(
  createResourceRoute({ path: "/", tag: "Admin", summary: "Create a namespace", security, body: CreateNamespaceSchema, response: NamespaceSchema, description: "The namespace" }),
  async (c) => {
    const body = c.req.valid("json");
    if (await findNamespace(c.env.DB, body.namespace_name)) {
      throw new ApiError("conflict", `namespace ${body.namespace_name} already exists`);
    }
    const now = isoNow();
    const namespaceId = newId("ns");
    // The Durable Object learns its id and settings before the namespace becomes reachable.
    const settings = await namespaceStub(c.env, namespaceId).configure(namespaceId, { ...DEFAULT_SETTINGS, ...body.settings });
    const ns: Namespace = { namespace_id: namespaceId, namespace_name: body.namespace_name, settings, created_at: now, updated_at: now };
    await createUnique(
      insertNamespace(c.env.DB, ns),
      `namespace ${body.namespace_name}`,
    );
    return c.json(ns, 201);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Admin", summary: "List namespaces, newest first", security, item: NamespaceSchema, name: "NamespaceList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), NAMESPACE_CURSOR, (req) => listNamespaces(c.env.DB, req)), 200),
);

app.openapi(
  getRoute({ path: "/{namespace}", tag: "Admin", summary: "Get a namespace by id or name", security, params: NamespaceParam, response: NamespaceSchema, description: "The namespace" }),
  async (c) => c.json(await mustFindNamespace(c, c.req.valid("param").namespace), 200),
);

app.openapi(
  createRoute({
    method: "patch",
    path: "/{namespace}",
    tags: ["Admin"],
    summary: "Change a namespace's settings (applies at once)",
    security,
    request: { params: NamespaceParam, body: jsonBody(z.object({ settings: SettingsSchema }).strict()) },
    responses: { 200: json(NamespaceSchema, "The namespace"), ...errorResponses },
  }),
  async (c) => {
    const ns = await mustFindNamespace(c, c.req.valid("param").namespace);
    const { settings } = c.req.valid("json");
    // The Durable Object is the authority; D1 keeps a copy for listing. A failure between the
    // two is repaired by repeating the request, which is idempotent.
    const applied = await namespaceStub(c.env, ns.namespace_id).configure(ns.namespace_id, settings);
    const now = isoNow();
    await updateNamespaceSettings(c.env.DB, ns.namespace_id, applied, now);
    return c.json({ ...ns, settings: applied, updated_at: now }, 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{namespace}/api-keys",
    tags: ["Admin"],
    // No Idempotency-Key here: replaying this response would mean storing the secret.
    summary: "Create an API key (the secret is shown only in this response)",
    security,
    request: { params: NamespaceParam, body: { required: false, content: { "application/json": { schema: z.object({ name: z.string().max(200).optional() }).strict() } } } },
    responses: {
      201: json(ApiKeySchema.omit({ revoked_at: true }).extend({ api_key: z.string() }).openapi("NewApiKey"), "The key and its secret"),
      ...errorResponses,
    },
  }),
  async (c) => {
    const ns = await mustFindNamespace(c, c.req.valid("param").namespace);
    const body = c.req.valid("json");
    const secret = newApiKey();
    const key = { key_id: newId("key"), name: body?.name ?? null, created_at: isoNow(), revoked_at: null };
    await insertKey(c.env.DB, ns.namespace_id, key, secret);
    return c.json({ key_id: key.key_id, name: key.name, api_key: secret, created_at: key.created_at }, 201);
  },
);

app.openapi(
  listRoute({ path: "/{namespace}/api-keys", tag: "Admin", summary: "List a namespace's API keys (no secrets), newest first", security, item: ApiKeySchema, name: "ApiKeyList", params: NamespaceParam }),
  async (c) => {
    const ns = await mustFindNamespace(c, c.req.valid("param").namespace);
    return c.json(await servePage(c.req.valid("query"), API_KEY_CURSOR, (req) => listKeys(c.env.DB, ns.namespace_id, req)), 200);
  },
);

app.openapi(
  createRoute({
    method: "delete",
    path: "/{namespace}/api-keys/{key_id}",
    tags: ["Admin"],
    summary: "Revoke an API key (refused everywhere within 60 s; its event streams end at once)",
    security,
    request: { params: NamespaceParam.extend({ key_id: z.string().max(128) }) },
    responses: { 200: json(z.object({ success: z.literal(true), message: z.string() }), "Revoked"), ...errorResponses },
  }),
  async (c) => {
    const { namespace, key_id } = c.req.valid("param");
    const ns = await mustFindNamespace(c, namespace);
    if (!(await revokeKey(c.env.DB, ns.namespace_id, key_id, isoNow()))) throw new ApiError("not_found", `API key ${key_id} not found`);
    try {
      await namespaceStub(c.env, ns.namespace_id).endStreamsOf(key_id);
    } catch (err) {
      // The revocation is committed; the object's own check of its streams' keys ends them within 60 s.
      console.error(`streams of revoked key ${key_id} could not be ended at once`, err);
    }
    return c.json({ success: true as const, message: `API key ${key_id} revoked` }, 200);
  },
);

export default app;

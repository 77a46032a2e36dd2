import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { byIsoTime } from "../cursor";
import { bucketExists, deleteCollection, insertCollection } from "../db/catalog";
import { type DocumentRow, findCollection, findCollectionWithVersion, findTaxonomy } from "../db/dataplane";
import { listCollections, listDocuments } from "../db/dataplane-lists";
import { mapPage, type PageRequest } from "../db/keyset";
import { extractorAvailable, forgetCollection, searchCollection } from "../dataplane/search";
import { FeatureExtractorSchema, resolveExtractor } from "../tasks/extractor-config";
import { fromBlob } from "../tasks/vector-blob";
import { ApiError, createUnique, unwrap } from "../errors";
import { newId } from "../ids";
import { type JsonObject, JsonObjectSchema, TaskSchema } from "../tasks/model";
import { isoNow } from "../time";
import { namespaceOf } from "./auth";
import { type AppEnv, requestOrigin } from "./env";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { listRoute, servePage } from "./list";
import { getRoute, deleteRoute } from "./routes";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";

const security = [{ apiKey: [] }];
const app = apiKeyApp();
const COLLECTION_CURSOR = byIsoTime("collections");
const DOCUMENT_CURSOR = byIsoTime("documents");

const CollectionSchema = z
  .object({
    collection_id: z.string(),
    collection_name: z.string(),
    source_bucket_ids: z.array(z.string()),
    feature_extractor: FeatureExtractorSchema,
    created_at: z.string(),
  })
  .openapi("Collection");

const DocumentSchema = z
  .object({
    document_id: z.string(),
    object_id: z.string(),
    metadata: JsonObjectSchema,
    cluster_id: z.number().int().nullable(),
    taxonomy: z.object({ taxonomy_id: z.string(), label: z.string(), score: z.number() }).nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    vector: z.array(z.number()).optional(),
  })
  .openapi("Document");

const CollectionParam = z.object({ collection: z.string().max(128).openapi({ param: { name: "collection", in: "path" } }) });
const TaskResponse = z.object({ task: TaskSchema }).openapi("TaskCreated");

async function collectionOf(c: Context<AppEnv>, idOrName: string) {
  const found = await findCollection(c.env.DB, c.get("principal").namespace_id, idOrName);
  if (!found) throw new ApiError("not_found", `collection ${idOrName} not found`);
  return found;
}

app.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Collections"],
    summary: "Create a collection over source buckets",
    security,
    middleware: idempotent,
    request: {
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({
            collection_name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1–63 lowercase letters, digits, '_' or '-'"),
            source_bucket_ids: z.array(z.string().max(64)).min(1).max(20),
            feature_extractor: FeatureExtractorSchema.optional(),
          })
          .strict(),
      ),
    },
    responses: { 201: json(CollectionSchema, "The collection"), ...errorResponses },
  }),
  async (c) => {
    const ns = c.get("principal").namespace_id;
    const body = c.req.valid("json");
    const extractor = resolveExtractor(body.feature_extractor);
    if (!extractorAvailable(c.env, extractor)) {
      throw new ApiError("validation_error", "feature_extractor workers_ai needs the Workers AI binding (AI), which this deployment does not have; use text_embedding", {
        field: "feature_extractor",
      });
    }
    const buckets = [...new Set(body.source_bucket_ids)];
    for (const id of buckets) {
      if (!(await bucketExists(c.env.DB, ns, id))) throw new ApiError("validation_error", `bucket ${id} not found`, { field: "source_bucket_ids" });
    }
    const collection = {
      collection_id: newId("col"),
      collection_name: body.collection_name,
      source_bucket_ids: buckets,
      feature_extractor: extractor,
      created_at: isoNow(),
    };
    const refused = await createUnique(insertCollection(c.env.DB, ns, collection), `collection ${body.collection_name}`);
    if (refused) {
      const limit = refused.quota;
      throw new ApiError("conflict", `the namespace has reached its quota of ${limit} collections (settings.max_collections)`, { quota: "max_collections", limit });
    }
    return c.json(collection, 201);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Collections", summary: "List collections, newest first", security, item: CollectionSchema, name: "CollectionList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), COLLECTION_CURSOR, (req) => listCollections(c.env.DB, c.get("principal").namespace_id, req)), 200),
);

app.openapi(
  getRoute({ path: "/{collection}", tag: "Collections", summary: "Get a collection by id or name", security, params: CollectionParam, response: CollectionSchema, description: "The collection" }),
  async (c) => c.json(await collectionOf(c, c.req.valid("param").collection), 200),
);

app.openapi(
  deleteRoute({ path: "/{collection}", tag: "Collections", summary: "Delete a collection: its unfinished tasks are cancelled, its documents removed", security, params: CollectionParam }),
  async (c) => {
    const ns = c.get("principal").namespace_id;
    const col = await collectionOf(c, c.req.valid("param").collection);
    const cancelled = await namespaceOf(c).cancelWhereInput("collection_id", col.collection_id);
    await deleteCollection(c.env.DB, ns, col.collection_id);
    forgetCollection(col.collection_id);
    return c.json({ success: true as const, message: `collection ${col.collection_name} deleted; ${cancelled} unfinished tasks cancelled` }, 200);
  },
);

const toDocument = (d: DocumentRow, withVector: boolean) => ({
  document_id: d.document_id,
  object_id: d.object_id,
  metadata: JSON.parse(d.metadata) as Record<string, never>,
  cluster_id: d.cluster_id,
  taxonomy: d.taxonomy === null ? null : (JSON.parse(d.taxonomy) as { taxonomy_id: string; label: string; score: number }),
  created_at: d.created_at,
  updated_at: d.updated_at,
  ...(withVector ? { vector: Array.from(fromBlob(d.vector)) } : {}),
});

app.openapi(
  listRoute({
    path: "/{collection}/documents",
    tag: "Collections",
    summary: "The collection's documents, newest first",
    security,
    item: DocumentSchema,
    name: "DocumentList",
    params: CollectionParam,
    filters: { include_vectors: z.enum(["true", "false"]).optional() },
  }),
  async (c) => {
    const col = await collectionOf(c, c.req.valid("param").collection);
    const q = c.req.valid("query");
    const read = async (req: PageRequest<[string, string]>) => mapPage(await listDocuments(c.env.DB, col.collection_id, req), (d) => toDocument(d, q.include_vectors === "true"));
    return c.json(await servePage(q, DOCUMENT_CURSOR, read), 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{collection}/search",
    tags: ["Collections"],
    summary: "Documents nearest to a text query, by cosine similarity",
    security,
    request: { params: CollectionParam, body: jsonBody(z.object({ query: z.string().min(1).max(10_000), limit: z.number().int().min(1).max(100).optional() }).strict()) },
    responses: {
      200: json(z.object({ results: z.array(z.object({ document_id: z.string(), object_id: z.string(), score: z.number(), metadata: JsonObjectSchema })) }), "Results"),
      ...errorResponses,
    },
  }),
  async (c) => {
    const idOrName = c.req.valid("param").collection;
    const found = await findCollectionWithVersion(c.env.DB, c.get("principal").namespace_id, idOrName);
    if (!found) throw new ApiError("not_found", `collection ${idOrName} not found`);
    const { query, limit } = c.req.valid("json");
    const results = await searchCollection(c.env, found.collection, found.vectorsVersion, query, limit ?? 10);
    return c.json({ results }, 200);
  },
);

const taskRoute = (path: string, summary: string, body: z.ZodType) =>
  createRoute({
    method: "post",
    path: `/{collection}/${path}`,
    tags: ["Collections"],
    summary,
    security,
    middleware: idempotent,
    request: { params: CollectionParam, headers: IdempotencyHeader, body: jsonBody(body) },
    responses: { 202: json(TaskResponse, "The task, accepted"), ...errorResponses },
  });

async function startTask(c: Context<AppEnv>, taskType: string, inputs: Record<string, unknown>) {
  const task = unwrap(await namespaceOf(c).createTask({ task_type: taskType, inputs: inputs as JsonObject }, requestOrigin(c)));
  return c.json({ task }, 202);
}

app.openapi(taskRoute("rebuild", "Re-embed every object of the sources (index_rebuild)", z.object({}).strict()), async (c) => {
  const col = await collectionOf(c, c.req.valid("param").collection);
  return startTask(c, "index_rebuild", { collection_id: col.collection_id });
});

app.openapi(
  taskRoute(
    "cluster",
    "k-means over the documents (clustering)",
    z.object({ k: z.number().int().min(2).max(100), max_iterations: z.number().int().min(1).max(1000).optional(), seed: z.number().int().optional() }).strict(),
  ),
  async (c) => {
    const col = await collectionOf(c, c.req.valid("param").collection);
    return startTask(c, "clustering", { collection_id: col.collection_id, ...(c.req.valid("json") as object) });
  },
);

app.openapi(
  taskRoute("apply-taxonomy", "Label documents with a taxonomy (taxonomy_apply)", z.object({ taxonomy_id: z.string().max(64), min_score: z.number().min(-1).max(1).optional() }).strict()),
  async (c) => {
    const col = await collectionOf(c, c.req.valid("param").collection);
    const body = c.req.valid("json") as { taxonomy_id: string; min_score?: number };
    const taxonomy = await findTaxonomy(c.env.DB, c.get("principal").namespace_id, body.taxonomy_id);
    if (!taxonomy) throw new ApiError("validation_error", `taxonomy ${body.taxonomy_id} not found`, { field: "taxonomy_id" });
    return startTask(c, "taxonomy_apply", { collection_id: col.collection_id, taxonomy_id: taxonomy.taxonomy_id, ...(body.min_score === undefined ? {} : { min_score: body.min_score }) });
  },
);

export default app;

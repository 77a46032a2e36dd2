import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { byIsoTime } from "../cursor";
import { deleteTaxonomy, insertModel, insertTaxonomy } from "../db/catalog";
import { findCollection, findModel, findTaxonomy } from "../db/dataplane";
import { listTaxonomies, toTaxonomy } from "../db/dataplane-lists";
import { predictLabel } from "../dataplane/search";
import { ApiError, createUnique, unwrap } from "../errors";
import { newId } from "../ids";
import { type JsonObject, TaskSchema } from "../tasks/model";
import { isoNow } from "../time";
import { namespaceOf } from "./auth";
import { type AppEnv, requestOrigin } from "./env";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { listRoute, servePage } from "./list";
import { createResourceRoute, deleteRoute } from "./routes";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";

const security = [{ apiKey: [] }];
const Name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1–63 lowercase letters, digits, '_' or '-'");

// --- taxonomies ---------------------------------------------------------------------------------

export const taxonomies = apiKeyApp();

const TaxonomySchema = z
  .object({
    taxonomy_id: z.string(),
    taxonomy_name: z.string(),
    nodes: z.array(z.object({ label: z.string(), examples: z.array(z.string()) })),
    created_at: z.string(),
  })
  .openapi("Taxonomy");
const TaxonomyParam = z.object({ taxonomy: z.string().max(128).openapi({ param: { name: "taxonomy", in: "path" } }) });

const TAXONOMY_CURSOR = byIsoTime("taxonomies");

taxonomies.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Taxonomies"],
    summary: "Create a taxonomy: labels, each with example texts",
    security,
    middleware: idempotent,
    request: {
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({
            taxonomy_name: Name,
            nodes: z.array(z.object({ label: z.string().min(1).max(200), examples: z.array(z.string().min(1).max(10_000)).min(1).max(100) }).strict()).min(1).max(200),
          })
          .strict()
          .refine((t) => new Set(t.nodes.map((n) => n.label)).size === t.nodes.length, "node labels must be unique"),
      ),
    },
    responses: { 201: json(TaxonomySchema, "The taxonomy"), ...errorResponses },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const taxonomy = { taxonomy_id: newId("tax"), taxonomy_name: body.taxonomy_name, nodes: body.nodes, created_at: isoNow() };
    await createUnique(insertTaxonomy(c.env.DB, c.get("principal").namespace_id, taxonomy), `taxonomy ${body.taxonomy_name}`);
    return c.json(taxonomy, 201);
  },
);

taxonomies.openapi(
  listRoute({ path: "/", tag: "Taxonomies", summary: "List taxonomies, newest first", security, item: TaxonomySchema, name: "TaxonomyList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), TAXONOMY_CURSOR, (req) => listTaxonomies(c.env.DB, c.get("principal").namespace_id, req)), 200),
);

async function taxonomyOf(c: Context<AppEnv>, idOrName: string) {
  const row = await findTaxonomy(c.env.DB, c.get("principal").namespace_id, idOrName);
  if (!row) throw new ApiError("not_found", `taxonomy ${idOrName} not found`);
  return row;
}

taxonomies.openapi(
  createRoute({ method: "get", path: "/{taxonomy}", tags: ["Taxonomies"], summary: "Get a taxonomy", security, request: { params: TaxonomyParam }, responses: { 200: json(TaxonomySchema, "The taxonomy"), ...errorResponses } }),
  async (c) => c.json(toTaxonomy(await taxonomyOf(c, c.req.valid("param").taxonomy)), 200),
);

taxonomies.openapi(
  deleteRoute({ path: "/{taxonomy}", tag: "Taxonomies", summary: "Delete a taxonomy and the labels it gave", security, params: TaxonomyParam }),
  async (c) => {
    const ns = c.get("principal").namespace_id;
    const row = await taxonomyOf(c, c.req.valid("param").taxonomy);
    await deleteTaxonomy(c.env.DB, ns, row.taxonomy_id);
    return c.json({ success: true as const, message: `taxonomy ${row.taxonomy_name} deleted` }, 200);
  },
);

// --- models ---------------------------------------------------------------------------------------

export const models = apiKeyApp();

const ModelSchema = z
  .object({
    model_id: z.string(),
    model_name: z.string(),
    collection_id: z.string(),
    label_field: z.string(),
    version: z.number().int(),
    metrics: z.object({ labels: z.array(z.string()), train_accuracy: z.number(), holdout_accuracy: z.number(), loss_curve: z.array(z.number()) }).nullable(),
    trained_at: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("Model");
const ModelParam = z.object({ model: z.string().max(128).openapi({ param: { name: "model", in: "path" } }) });

type ModelRow = NonNullable<Awaited<ReturnType<typeof findModel>>>;
const toModel = ({ weights: _, metrics, ...row }: ModelRow) => ({ ...row, metrics: metrics === null ? null : (JSON.parse(metrics) as z.infer<typeof ModelSchema>["metrics"]) });

async function modelOf(c: Context<AppEnv>, idOrName: string): Promise<ModelRow> {
  const row = await findModel(c.env.DB, c.get("principal").namespace_id, idOrName);
  if (!row) throw new ApiError("not_found", `model ${idOrName} not found`);
  return row;
}

models.openapi(
  createResourceRoute({ path: "/", tag: "Models", summary: "Create a classifier over a collection, predicting metadata[label_field]", security, body: z.object({ model_name: Name, collection_id: z.string().max(64), label_field: z.string().min(1).max(200) }).strict(), response: ModelSchema, description: "The model, untrained" }),
  async (c) => {
    const ns = c.get("principal").namespace_id;
    const body = c.req.valid("json");
    const collection = await findCollection(c.env.DB, ns, body.collection_id);
    if (!collection) throw new ApiError("validation_error", `collection ${body.collection_id} not found`, { field: "collection_id" });
    const row: ModelRow = { model_id: newId("mdl"), model_name: body.model_name, collection_id: collection.collection_id, label_field: body.label_field, version: 0, weights: null, metrics: null, trained_at: null, created_at: isoNow() };
    await createUnique(insertModel(c.env.DB, ns, row), `model ${body.model_name}`);
    return c.json(toModel(row), 201);
  },
);

models.openapi(
  createRoute({ method: "get", path: "/{model}", tags: ["Models"], summary: "Get a model", security, request: { params: ModelParam }, responses: { 200: json(ModelSchema, "The model"), ...errorResponses } }),
  async (c) => c.json(toModel(await modelOf(c, c.req.valid("param").model)), 200),
);

models.openapi(
  createRoute({
    method: "post",
    path: "/{model}/tune",
    tags: ["Models"],
    summary: "Train the model (model_tuning); predict serves the latest trained version",
    security,
    middleware: idempotent,
    request: {
      params: ModelParam,
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({
            epochs: z.number().int().min(1).max(500).optional(),
            learning_rate: z.number().positive().max(100).optional(),
            holdout_fraction: z.number().min(0).max(0.9).optional(),
            seed: z.number().int().optional(),
          })
          .strict(),
      ),
    },
    responses: { 202: json(z.object({ task: TaskSchema }), "The task, accepted"), ...errorResponses },
  }),
  async (c) => {
    const model = await modelOf(c, c.req.valid("param").model);
    const inputs = { model_id: model.model_id, ...(c.req.valid("json") as object) };
    const task = unwrap(await namespaceOf(c).createTask({ task_type: "model_tuning", inputs: inputs as JsonObject }, requestOrigin(c)));
    return c.json({ task }, 202);
  },
);

models.openapi(
  createRoute({
    method: "post",
    path: "/{model}/predict",
    tags: ["Models"],
    summary: "Classify a text with the latest trained version (409 before the first training)",
    security,
    request: { params: ModelParam, body: jsonBody(z.object({ text: z.string().min(1).max(100_000) }).strict()) },
    responses: { 200: json(z.object({ label: z.string(), scores: z.record(z.string(), z.number()), version: z.number().int() }), "The prediction"), ...errorResponses },
  }),
  async (c) => {
    const model = await modelOf(c, c.req.valid("param").model);
    if (model.weights === null) throw new ApiError("conflict", "the model has not been trained yet; POST .../tune first", { version: 0 });
    const collection = await findCollection(c.env.DB, c.get("principal").namespace_id, model.collection_id);
    if (!collection) throw new ApiError("not_found", `the collection of model ${model.model_name} is gone`);
    const { label, scores } = await predictLabel(c.env, collection.feature_extractor, model.weights, c.req.valid("json").text);
    return c.json({ label, scores, version: model.version }, 200);
  },
);

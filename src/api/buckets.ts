import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { byIsoTime, byMillis } from "../cursor";
import { deleteBucket, deleteObject, insertBucket } from "../db/catalog";
import { collectionsSourcing, findBucket, getObject } from "../db/dataplane";
import { listBuckets, listObjects } from "../db/dataplane-lists";
import { createObject } from "../dataplane/objects";
import { NewObject } from "../db/objects";
import { bindStaging, dropUnboundStaging, stagingInserts } from "../db/staging";
import { ApiError, createUnique, unwrap } from "../errors";
import { newId } from "../ids";
import { JsonObjectSchema, LIMITS, TaskSchema } from "../tasks/model";
import { isoNow } from "../time";
import { namespaceOf } from "./auth";
import { type AppEnv, requestOrigin } from "./env";
import { apiKeyApp } from "./gate";
import { idempotent } from "./idempotency";
import { listRoute, servePage } from "./list";
import { createResourceRoute, deleteRoute, getRoute } from "./routes";
import { errorResponses, IdempotencyHeader, json, jsonBody } from "./schemas";

const security = [{ apiKey: [] }];
const app = apiKeyApp();
/** The batch import takes bodies up to 10 MiB (SPEC §5 Limits); everything else up to 1 MiB. */
export const bucketImports = apiKeyApp(LIMITS.batchBodyBytes);
const BUCKET_CURSOR = byIsoTime("buckets");
const OBJECT_CURSOR = byMillis("objects");

const BucketSchema = z
  .object({ bucket_id: z.string(), bucket_name: z.string(), description: z.string().nullable(), created_at: z.string() })
  .openapi("Bucket");
const ObjectSchema = z
  .object({
    object_id: z.string(),
    bucket_id: z.string(),
    key: z.string().nullable(),
    metadata: JsonObjectSchema,
    created_at: z.string(),
    task_ids: z.array(z.string()),
    content: z.string().optional(),
  })
  .openapi("Object");

const Name = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "must be 1–63 lowercase letters, digits, '_' or '-'");
const BucketParam = z.object({ bucket: z.string().max(128).openapi({ param: { name: "bucket", in: "path" } }) });

async function bucketOf(c: Context<AppEnv>, idOrName: string) {
  const bucket = await findBucket(c.env.DB, c.get("principal").namespace_id, idOrName);
  if (!bucket) throw new ApiError("not_found", `bucket ${idOrName} not found`);
  return bucket;
}

app.openapi(
  createResourceRoute({ path: "/", tag: "Buckets", summary: "Create a bucket", security, body: z.object({ bucket_name: Name, description: z.string().max(500).optional() }).strict(), response: BucketSchema, description: "The bucket" }),
  async (c) => {
    const body = c.req.valid("json");
    const bucket = { bucket_id: newId("bkt"), bucket_name: body.bucket_name, description: body.description ?? null, created_at: isoNow() };
    await createUnique(insertBucket(c.env.DB, c.get("principal").namespace_id, bucket), `bucket ${body.bucket_name}`);
    return c.json(bucket, 201);
  },
);

app.openapi(
  listRoute({ path: "/", tag: "Buckets", summary: "List buckets, newest first", security, item: BucketSchema, name: "BucketList" }),
  async (c) => c.json(await servePage(c.req.valid("query"), BUCKET_CURSOR, (req) => listBuckets(c.env.DB, c.get("principal").namespace_id, req)), 200),
);

app.openapi(
  getRoute({ path: "/{bucket}", tag: "Buckets", summary: "Get a bucket by id or name", security, params: BucketParam, response: BucketSchema, description: "The bucket" }),
  async (c) => c.json(await bucketOf(c, c.req.valid("param").bucket), 200),
);

app.openapi(
  deleteRoute({ path: "/{bucket}", tag: "Buckets", summary: "Delete a bucket and its objects (refused while a collection sources it)", security, params: BucketParam }),
  async (c) => {
    const ns = c.get("principal").namespace_id;
    const bucket = await bucketOf(c, c.req.valid("param").bucket);
    const sourcing = await collectionsSourcing(c.env.DB, ns, bucket.bucket_id);
    if (sourcing.length > 0) {
      throw new ApiError("conflict", "collections still use this bucket as a source; delete them first", { collection_ids: sourcing });
    }
    await deleteBucket(c.env.DB, ns, bucket.bucket_id);
    return c.json({ success: true as const, message: `bucket ${bucket.bucket_name} deleted` }, 200);
  },
);

app.openapi(
  createRoute({
    method: "post",
    path: "/{bucket}/objects",
    tags: ["Objects"],
    summary: "Create an object: one object_create task per collection sourcing the bucket",
    security,
    middleware: idempotent,
    request: { params: BucketParam, headers: IdempotencyHeader, body: jsonBody(NewObject) },
    responses: { 201: json(ObjectSchema, "The object and the ids of the tasks it caused"), ...errorResponses },
  }),
  async (c) => {
    const bucket = await bucketOf(c, c.req.valid("param").bucket);
    const ns = c.get("principal").namespace_id;
    return c.json(await createObject(c.env, ns, requestOrigin(c), bucket.bucket_id, c.req.valid("json")), 201);
  },
);

bucketImports.openapi(
  createRoute({
    method: "post",
    path: "/{bucket}/objects/batch",
    tags: ["Objects"],
    summary: "Import up to 10 000 objects as one batch_import task (body up to 10 MiB)",
    security,
    middleware: idempotent,
    request: { params: BucketParam, headers: IdempotencyHeader, body: jsonBody(z.object({ objects: z.array(NewObject).min(1).max(10_000) }).strict()) },
    responses: { 202: json(z.object({ task: TaskSchema }), "The batch_import task"), ...errorResponses },
  }),
  async (c) => {
    const bucket = await bucketOf(c, c.req.valid("param").bucket);
    const { objects } = c.req.valid("json");
    const ns = c.get("principal").namespace_id;
    const stagingId = newId("obj").replace("obj_", "stg_");
    // Staged before the task exists, so the task never runs without its payload; bound to the
    // task once it does (the task binds it itself should this request die first).
    await c.env.DB.batch(stagingInserts(c.env.DB, ns, stagingId, objects));
    const created = await namespaceOf(c).createTask(
      { task_type: "batch_import", inputs: { bucket_id: bucket.bucket_id, staging_id: stagingId, count: objects.length } },
      requestOrigin(c),
    );
    // Only a refusal proves no task exists; after a failed call one may, and it adopts the rows.
    if (!created.ok) await dropUnboundStaging(c.env.DB, ns, stagingId);
    const task = unwrap(created);
    await bindStaging(c.env.DB, ns, stagingId, task.task_id);
    return c.json({ task }, 202);
  },
);

app.openapi(
  listRoute({ path: "/{bucket}/objects", tag: "Objects", summary: "List a bucket's objects, newest first (without content)", security, item: ObjectSchema, name: "ObjectList", params: BucketParam }),
  async (c) => {
    const bucket = await bucketOf(c, c.req.valid("param").bucket);
    return c.json(await servePage(c.req.valid("query"), OBJECT_CURSOR, (req) => listObjects(c.env.DB, c.get("principal").namespace_id, bucket.bucket_id, req)), 200);
  },
);

const ObjectParam = BucketParam.extend({ object_id: z.string().max(128).openapi({ param: { name: "object_id", in: "path" } }) });

app.openapi(
  getRoute({ path: "/{bucket}/objects/{object_id}", tag: "Objects", summary: "Get an object with its content", security, params: ObjectParam, response: ObjectSchema, description: "The object" }),
  async (c) => {
    const { bucket, object_id } = c.req.valid("param");
    const b = await bucketOf(c, bucket);
    const object = await getObject(c.env.DB, c.get("principal").namespace_id, object_id);
    if (!object || object.bucket_id !== b.bucket_id) throw new ApiError("not_found", `object ${object_id} not found`);
    return c.json(object, 200);
  },
);

app.openapi(
  deleteRoute({ path: "/{bucket}/objects/{object_id}", tag: "Objects", summary: "Delete an object and its documents in every collection", security, params: ObjectParam }),
  async (c) => {
    const { bucket, object_id } = c.req.valid("param");
    const ns = c.get("principal").namespace_id;
    const b = await bucketOf(c, bucket);
    const object = await getObject(c.env.DB, ns, object_id);
    if (!object || object.bucket_id !== b.bucket_id) throw new ApiError("not_found", `object ${object_id} not found`);
    await deleteObject(c.env.DB, ns, object_id);
    return c.json({ success: true as const, message: `object ${object_id} deleted` }, 200);
  },
);

export default app;

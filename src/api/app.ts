import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import dashboard from "../dashboard";
import docs from "../docs";
import { ApiError, errorBody } from "../errors";
import { LIMITS } from "../tasks/model";
import { authenticate } from "./auth";
import { emptyJsonIsEmptyObject } from "./json-body";
import callbacks, { batchCallbacks } from "./callbacks";
import events from "./events";
import { newApp } from "./env";
import namespaces from "./namespaces";
import processors from "./processors";
import taskBatch from "./task-batch";
import tasks from "./tasks";
import webhooks from "./webhooks";
import buckets from "./buckets";
import collections from "./collections";
import { models, taxonomies } from "./models";
import mixpeek from "./mixpeek";
import { describeDocument } from "./openapi-meta";

/** A request with a body must send JSON: anything else would be validated as an empty object. */
const requireJson: MiddlewareHandler = async (c, next) => {
  const method = c.req.method;
  if (method === "POST" || method === "PUT" || method === "PATCH") {
    const type = c.req.header("Content-Type");
    const length = c.req.header("Content-Length");
    const hasBody = (length !== undefined && length !== "0") || c.req.header("Transfer-Encoding") !== undefined;
    if (hasBody && !(type && /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(type))) {
      throw new ApiError("invalid_json", "the request body must be JSON, sent with Content-Type: application/json");
    }
  }
  await next();
};

export function createApp() {
  const app = newApp();

  app.get("/health", (c) => c.json({ ok: true }));
  app.route("/", dashboard);

  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError("payload_too_large", `request body exceeds ${maxSize} bytes`);
      },
    });
  const ordinaryLimit = limit(LIMITS.bodyBytes);
  const batchLimit = limit(LIMITS.batchBodyBytes);
  // Authentication and the rate limit read headers only, so that a request without valid
  // credentials, or beyond its namespace's limit, is answered before its body is read.
  app.use("/v1/*", authenticate);
  // Batch routes (an import, a batch of tasks or of callback reports) take the larger limit.
  const batchRoute = /^\/v1\/(buckets\/[^/]+\/objects\/batch|tasks\/batch|callbacks)$/;
  app.use("/v1/*", (c, next) => (batchRoute.test(c.req.path) ? batchLimit(c, next) : ordinaryLimit(c, next)));
  app.use("/v1/*", requireJson);
  app.use("/v1/*", emptyJsonIsEmptyObject);

  app.route("/v1/namespaces", namespaces);
  app.route("/v1/tasks", callbacks);
  app.route("/v1/callbacks", batchCallbacks);
  app.route("/v1", events);
  app.route("/v1/tasks", taskBatch);
  app.route("/v1/tasks", tasks);
  app.route("/v1/processors", processors);
  app.route("/v1/webhooks", webhooks);
  app.route("/v1/buckets", buckets);
  app.route("/v1/collections", collections);
  app.route("/v1/taxonomies", taxonomies);
  app.route("/v1/models", models);

  // SPEC §11: the task endpoints in Mixpeek's dialect, behind the same API keys.
  app.use("/mixpeek/*", authenticate, ordinaryLimit);
  app.route("/mixpeek", mixpeek);

  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", { type: "http", scheme: "bearer", description: "sk_... API key" });
  app.openAPIRegistry.registerComponent("securitySchemes", "adminToken", { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" });
  app.openAPIRegistry.registerComponent("securitySchemes", "callbackToken", { type: "http", scheme: "bearer", description: "callback.token of the attempt" });
  const openapi = {
    openapi: "3.1.0",
    info: {
      title: "edge-tasks",
      version: "0.1.0",
      description: "Tasks for data pipelines on Cloudflare Workers: create, follow, cancel, and hand work to processors.",
    },
  };
  app.get("/openapi.json", (c) => c.json(describeDocument(app.getOpenAPI31Document(openapi), c.env?.PUBLIC_URL || new URL(c.req.url).origin)));
  app.route("/", docs);

  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
      return c.json(err.toBody(), err.status);
    }
    if (err instanceof HTTPException && err.status === 400) {
      return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
    }
    console.error(`unhandled error on ${c.req.method} ${c.req.path}`, err);
    return c.json(errorBody("internal_error", "internal error"), 500);
  });

  return app;
}

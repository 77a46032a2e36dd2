import dashboard from "../dashboard";
import docs from "../docs";
import { errorBody } from "../errors";
import { LIMITS } from "../tasks/model";
import { apiKeyAuth } from "./auth";
import { bodyUpTo } from "./gate";
import callbacks, { batchCallbacks } from "./callbacks";
import events from "./events";
import { answerError, newApp, requestOrigin } from "./env";
import namespaces from "./namespaces";
import processors from "./processors";
import taskBatch from "./task-batch";
import tasks from "./tasks";
import webhooks from "./webhooks";
import buckets, { bucketImports } from "./buckets";
import collections from "./collections";
import { models, taxonomies } from "./models";
import mixpeek from "./mixpeek";
import { describeDocument } from "./openapi-meta";
import { config } from "../config";

export function createApp() {
  const app = newApp();

  app.get("/health", (c) => c.json({ ok: true }));
  app.route("/", dashboard);

  // Each sub-app gates its own routes (src/api/gate.ts): credentials first, from headers alone,
  // so a request without them is answered before its body is read; then the body's size and type.
  app.route("/v1/namespaces", namespaces);
  app.route("/v1/tasks", callbacks);
  app.route("/v1/callbacks", batchCallbacks);
  app.route("/v1", events);
  app.route("/v1/tasks", taskBatch);
  app.route("/v1/tasks", tasks);
  app.route("/v1/processors", processors);
  app.route("/v1/webhooks", webhooks);
  app.route("/v1/buckets", bucketImports);
  app.route("/v1/buckets", buckets);
  app.route("/v1/collections", collections);
  app.route("/v1/taxonomies", taxonomies);
  app.route("/v1/models", models);

  // SPEC §11: the task endpoints in Mixpeek's dialect, behind the same API keys.
  app.use("/mixpeek/*", apiKeyAuth, bodyUpTo(LIMITS.bodyBytes));
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
  app.get("/openapi.json", (c) => c.json(describeDocument(app.getOpenAPI31Document(openapi), config(c.env).publicUrl ?? requestOrigin(c))));
  app.route("/", docs);

  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  app.onError(answerError);

  return app;
}

// What /openapi.json says beyond the routes' own schemas: an operationId and a description for
// every operation, the tags with their descriptions, and the server. Kept in one table, keyed by
// "METHOD path", so the routes stay short; test/node/openapi.test.ts checks it covers every route.

export const TAGS = [
  { name: "Admin", description: "Namespaces (tenants) and their API keys; takes the ADMIN_TOKEN." },
  { name: "Tasks", description: "Create, list, follow, cancel and replay tasks; the status machine of SPEC §5." },
  { name: "Events", description: "Every task transition as a stream: Server-Sent Events or a WebSocket, resumable by sequence number." },
  { name: "Processor callbacks", description: "What an external processor reports for the attempt it was handed, with that attempt's token." },
  { name: "Processors", description: "Hand a task type to your own HTTPS endpoint, which receives signed dispatches, or to workers that lease its tasks." },
  { name: "Webhooks", description: "Signed deliveries of task events to your endpoints, with retries and a delivery log." },
  { name: "Buckets", description: "Containers of objects; each object landed in a bucket becomes tasks for the collections that source it." },
  { name: "Objects", description: "The objects of a bucket, one at a time or imported in batches." },
  { name: "Collections", description: "Embedded documents over source buckets: search, re-index, cluster, label." },
  { name: "Taxonomies", description: "Labels with example texts, applied to a collection's documents." },
  { name: "Models", description: "Classifiers trained on a collection's documents." },
] as const;

interface OperationMeta {
  operationId: string;
  description: string;
}

const op = (operationId: string, description: string): OperationMeta => ({ operationId, description });

/** Every operation of the API, keyed by "METHOD path" as it appears in the document. */
export const OPERATIONS: Readonly<Record<string, OperationMeta>> = {
  "POST /v1/namespaces": op("createNamespace", "Creates a tenant with its settings; every other resource lives in one namespace."),
  "GET /v1/namespaces": op("listNamespaces", "Lists the namespaces, newest first, in cursor pages."),
  "GET /v1/namespaces/{namespace}": op("getNamespace", "Returns a namespace by its id or its name, with its settings."),
  "PATCH /v1/namespaces/{namespace}": op("updateNamespace", "Changes settings (limits, quotas); a raised concurrency limit admits waiting tasks at once."),
  "POST /v1/namespaces/{namespace}/api-keys": op("createApiKey", "Creates an API key for the namespace; the secret `sk_...` is in this response only, and stored as a hash."),
  "GET /v1/namespaces/{namespace}/api-keys": op("listApiKeys", "Lists a namespace's API keys without their secrets."),
  "DELETE /v1/namespaces/{namespace}/api-keys/{key_id}": op("revokeApiKey", "Revokes a key: refused within 60 s, and every stream opened with it ends."),
  "POST /v1/tasks/{task_id}/callback/progress": op("reportProgress", "Reports progress of the current attempt and renews its lease; 409 once the attempt has ended."),
  "POST /v1/tasks/{task_id}/callback/logs": op("reportLogs", "Adds log lines to the task (8 KiB a line, 100 lines a call)."),
  "POST /v1/tasks/{task_id}/callback/complete": op("reportComplete", "Completes the task with its outputs (up to 1 MiB of JSON)."),
  "POST /v1/tasks/{task_id}/callback/fail": op("reportFail", "Fails the attempt with an error code and message; retried while attempts remain unless `retryable` is false."),
  "POST /v1/callbacks": op("reportBatch", "Sends up to 100 reports of attempts (progress, logs, complete, fail) with the namespace's API key; each is fenced and applied on its own."),
  "GET /v1/events": op("followEvents", "Streams the namespace's task events, filtered by task type and status; resumable with Last-Event-ID."),
  "GET /v1/tasks/{task_id}/events": op("followTaskEvents", "Streams one task's events from its retained history, and ends after its terminal event."),
  "GET /v1/tasks/stats": op("getTaskStats", "Counts the namespace's created, queued and processing tasks against its limits."),
  "GET /v1/tasks": op("listTasks", "Lists tasks newest first, filtered by status, task type, parent and creation time, in keyset pages."),
  "POST /v1/tasks": op("createTask", "Creates a task of a type that has a processor or a built-in handler; admitted at once when a slot is free."),
  "POST /v1/tasks/batch": op("createTaskBatch", "Creates up to 1000 tasks in one atomic step, in the order given, or none."),
  "POST /v1/tasks/list": op("searchTasks", "Lists tasks with filters and sort in the body (Mixpeek's status names accepted); the body is optional."),
  "GET /v1/tasks/{task_id}": op("getTask", "Returns a task; with `wait`, long-polls until it changes or finishes."),
  "DELETE /v1/tasks/{task_id}": op("killTask", "Cancels a task if it is unfinished; idempotent, also for an unknown id (Mixpeek's kill)."),
  "POST /v1/tasks/bulk-cancel": op("bulkCancelTasks", "Cancels every unfinished task matching a filter (at least one), each an ordinary cancel, in short steps."),
  "POST /v1/tasks/{task_id}/replay": op("replayTask", "Creates a new task replaying a finished one: same type, inputs, priority, attempts and key, with replay_of_task_id."),
  "POST /v1/tasks/bulk-replay": op("bulkReplayTasks", "Replays the finished tasks matching a filter (the dead-letter view), at most 10 000 a call, with a `next` filter when more match."),
  "POST /v1/tasks/{task_id}/cancel": op("cancelTask", "Cancels a created, queued or processing task at once and frees its slot; a finished task is returned unchanged."),
  "GET /v1/tasks/{task_id}/logs": op("listTaskLogs", "Returns the task's log lines oldest first: the service's transitions and the handler's own lines."),
  "PUT /v1/processors/{task_type}": op("putProcessor", "Hands a task type to an HTTPS endpoint (push), or registers it for workers that lease its tasks (pull); a new processor's response carries its signing secret."),
  "POST /v1/processors/{task_type}/lease": op("leaseTasks", "Leases queued tasks of a pull-mode type, each under its own attempt, lease and callback token; long-polls with wait_seconds."),
  "GET /v1/processors/{task_type}": op("getProcessor", "Returns the processor of a task type, without its secret."),
  "DELETE /v1/processors/{task_type}": op("deleteProcessor", "Removes a processor; tasks of its type can no longer be created."),
  "GET /v1/processors": op("listProcessors", "Lists the namespace's processors."),
  "POST /v1/webhooks": op("createWebhook", "Registers an endpoint for task events; the signing secret is shown only here and on rotation."),
  "GET /v1/webhooks": op("listWebhooks", "Lists webhook endpoints, newest first."),
  "GET /v1/webhooks/{webhook_id}": op("getWebhook", "Returns a webhook endpoint without its secret."),
  "PATCH /v1/webhooks/{webhook_id}": op("updateWebhook", "Changes an endpoint's URL, event types, description or activation."),
  "DELETE /v1/webhooks/{webhook_id}": op("deleteWebhook", "Deletes an endpoint; its pending deliveries fail."),
  "POST /v1/webhooks/{webhook_id}/rotate-secret": op("rotateWebhookSecret", "Issues a new signing secret; the old one keeps signing for 24 h."),
  "POST /v1/webhooks/{webhook_id}/test": op("testWebhook", "Sends a webhook.test event to the endpoint, recorded as a delivery."),
  "GET /v1/webhooks/{webhook_id}/deliveries": op("listWebhookDeliveries", "Lists the endpoint's deliveries with their attempts and outcomes, newest first."),
  "POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": op("redeliverWebhook", "Delivers an event again with the same webhook-id, as a new delivery."),
  "POST /v1/buckets": op("createBucket", "Creates a bucket for objects."),
  "GET /v1/buckets": op("listBuckets", "Lists buckets, newest first."),
  "GET /v1/buckets/{bucket}": op("getBucket", "Returns a bucket by its id or its name."),
  "DELETE /v1/buckets/{bucket}": op("deleteBucket", "Deletes a bucket and its objects; refused while a collection sources it."),
  "POST /v1/buckets/{bucket}/objects": op("createObject", "Stores an object and creates one object_create task per collection that sources the bucket."),
  "GET /v1/buckets/{bucket}/objects": op("listObjects", "Lists a bucket's objects newest first, without their content."),
  "POST /v1/buckets/{bucket}/objects/batch": op("importObjects", "Imports up to 10 000 objects as one batch_import task; the body may be up to 10 MiB."),
  "GET /v1/buckets/{bucket}/objects/{object_id}": op("getObject", "Returns an object with its content."),
  "DELETE /v1/buckets/{bucket}/objects/{object_id}": op("deleteObject", "Deletes an object and its documents in every collection."),
  "POST /v1/collections": op("createCollection", "Creates a collection of embedded documents over source buckets."),
  "GET /v1/collections": op("listCollections", "Lists collections, newest first."),
  "GET /v1/collections/{collection}": op("getCollection", "Returns a collection by its id or its name."),
  "DELETE /v1/collections/{collection}": op("deleteCollection", "Deletes a collection: its unfinished tasks are cancelled and its documents removed."),
  "GET /v1/collections/{collection}/documents": op("listDocuments", "Lists the collection's documents, newest first."),
  "POST /v1/collections/{collection}/search": op("searchCollection", "Returns the documents nearest to a text query by cosine similarity."),
  "POST /v1/collections/{collection}/rebuild": op("rebuildCollection", "Re-embeds every object of the sources as an index_rebuild task."),
  "POST /v1/collections/{collection}/cluster": op("clusterCollection", "Runs k-means over the documents as a clustering task."),
  "POST /v1/collections/{collection}/apply-taxonomy": op("applyTaxonomy", "Labels the documents with a taxonomy as a taxonomy_apply task."),
  "POST /v1/taxonomies": op("createTaxonomy", "Creates a taxonomy: labels, each with example texts."),
  "GET /v1/taxonomies": op("listTaxonomies", "Lists the namespace's taxonomies."),
  "GET /v1/taxonomies/{taxonomy}": op("getTaxonomy", "Returns a taxonomy with its labels."),
  "DELETE /v1/taxonomies/{taxonomy}": op("deleteTaxonomy", "Deletes a taxonomy and the labels it gave."),
  "POST /v1/models": op("createModel", "Creates a classifier over a collection that predicts metadata[label_field]."),
  "GET /v1/models/{model}": op("getModel", "Returns a model and its trained versions."),
  "POST /v1/models/{model}/tune": op("tuneModel", "Trains the model as a model_tuning task; predict serves the latest trained version."),
  "POST /v1/models/{model}/predict": op("predictWithModel", "Classifies a text with the latest trained version; 409 before the first training."),
};

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The generated document with the table's operationIds and descriptions, the tags and the server. */
export function describeDocument<T extends { paths?: object }>(doc: T, serverUrl: string): T {
  for (const [path, operations] of Object.entries(doc.paths ?? {})) {
    if (!isRecord(operations)) continue;
    for (const [method, operation] of Object.entries(operations)) {
      const meta = OPERATIONS[`${method.toUpperCase()} ${path}`];
      if (!meta || !isRecord(operation)) continue; // the test names any operation the table misses
      operation.operationId = meta.operationId;
      operation.description = typeof operation.description === "string" ? `${meta.description}\n\n${operation.description}` : meta.description;
    }
  }
  return { ...doc, servers: [{ url: serverUrl, description: "This service" }], tags: TAGS.map((t) => ({ ...t })) };
}

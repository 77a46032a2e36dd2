import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app";

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document covering every endpoint with its request, response and error schemas", async () => {
    const res = await createApp().request("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>> };
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe("3.1.0");

    const expected = [
      "post /v1/namespaces", "get /v1/namespaces", "get /v1/namespaces/{namespace}", "patch /v1/namespaces/{namespace}",
      "post /v1/namespaces/{namespace}/api-keys", "get /v1/namespaces/{namespace}/api-keys", "delete /v1/namespaces/{namespace}/api-keys/{key_id}",
      "post /v1/tasks", "get /v1/tasks", "post /v1/tasks/list", "get /v1/tasks/stats", "get /v1/tasks/{task_id}",
      "post /v1/tasks/{task_id}/cancel", "delete /v1/tasks/{task_id}", "get /v1/tasks/{task_id}/logs",
      "get /v1/events", "get /v1/tasks/{task_id}/events",
      "post /v1/tasks/{task_id}/callback/progress", "post /v1/tasks/{task_id}/callback/logs",
      "post /v1/tasks/{task_id}/callback/complete", "post /v1/tasks/{task_id}/callback/fail",
      "put /v1/processors/{task_type}", "get /v1/processors", "get /v1/processors/{task_type}", "delete /v1/processors/{task_type}",
      "post /v1/webhooks", "get /v1/webhooks", "get /v1/webhooks/{webhook_id}", "patch /v1/webhooks/{webhook_id}",
      "delete /v1/webhooks/{webhook_id}", "post /v1/webhooks/{webhook_id}/rotate-secret", "post /v1/webhooks/{webhook_id}/test",
      "get /v1/webhooks/{webhook_id}/deliveries", "post /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
      "post /v1/buckets", "get /v1/buckets", "get /v1/buckets/{bucket}", "delete /v1/buckets/{bucket}",
      "post /v1/buckets/{bucket}/objects", "get /v1/buckets/{bucket}/objects", "post /v1/buckets/{bucket}/objects/batch",
      "get /v1/buckets/{bucket}/objects/{object_id}", "delete /v1/buckets/{bucket}/objects/{object_id}",
      "post /v1/collections", "get /v1/collections", "get /v1/collections/{collection}", "delete /v1/collections/{collection}",
      "get /v1/collections/{collection}/documents", "post /v1/collections/{collection}/search",
      "post /v1/collections/{collection}/rebuild", "post /v1/collections/{collection}/cluster", "post /v1/collections/{collection}/apply-taxonomy",
      "post /v1/taxonomies", "get /v1/taxonomies", "get /v1/taxonomies/{taxonomy}", "delete /v1/taxonomies/{taxonomy}",
      "post /v1/models", "get /v1/models/{model}", "post /v1/models/{model}/tune", "post /v1/models/{model}/predict",
    ];
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(documented.sort()).toEqual([...expected].sort());
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const codes = Object.keys(op.responses);
        expect(codes.some((c) => c.startsWith("2")), `${method} ${path}`).toBe(true);
        expect(codes, `${method} ${path}`).toEqual(expect.arrayContaining(["401", "422"]));
        const bodiless = ["/cancel", "/rotate-secret", "/test", "/redeliver"].some((suffix) => path.endsWith(suffix));
        if (["post", "put", "patch"].includes(method) && !bodiless) {
          expect(op.requestBody, `${method} ${path}`).toBeDefined();
        }
      }
    }
  });

  it("serves an interactive reference at /docs", async () => {
    const res = await createApp().request("/docs");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("/openapi.json");
  });
});

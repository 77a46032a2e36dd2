import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/api/app";
import { OPERATIONS, TAGS } from "../../src/api/openapi-meta";

interface Operation {
  operationId?: string;
  description?: string;
  tags?: string[];
}

interface Document {
  servers?: { url: string }[];
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
}

async function openapiDocument(): Promise<Document> {
  const res = await createApp().request("http://edge.test/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as Document;
}

const operations = (doc: Document) =>
  Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).map(([method, op]) => ({ key: `${method.toUpperCase()} ${p}`, op })));

const redocly = path.resolve(import.meta.dirname, "../../node_modules/.bin/redocly");

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
      "post /v1/tasks", "post /v1/tasks/batch", "get /v1/tasks", "post /v1/tasks/list", "get /v1/tasks/stats", "get /v1/tasks/{task_id}",
      "post /v1/tasks/{task_id}/cancel", "delete /v1/tasks/{task_id}", "get /v1/tasks/{task_id}/logs",
      "post /v1/tasks/bulk-cancel", "post /v1/tasks/{task_id}/replay", "post /v1/tasks/bulk-replay",
      "get /v1/events", "get /v1/tasks/{task_id}/events",
      "post /v1/tasks/{task_id}/callback/progress", "post /v1/tasks/{task_id}/callback/logs",
      "post /v1/tasks/{task_id}/callback/complete", "post /v1/tasks/{task_id}/callback/fail", "post /v1/callbacks",
      "put /v1/processors/{task_type}", "post /v1/processors/{task_type}/lease", "get /v1/processors", "get /v1/processors/{task_type}", "delete /v1/processors/{task_type}",
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
        const bodiless = ["/cancel", "/replay", "/rotate-secret", "/test", "/redeliver"].some((suffix) => path.endsWith(suffix));
        if (["post", "put", "patch"].includes(method) && !bodiless) {
          expect(op.requestBody, `${method} ${path}`).toBeDefined();
        }
      }
    }
  });

  it("names its server, and gives every operation an operationId and a description and every tag a declaration", async () => {
    const doc = await openapiDocument();
    expect(doc.servers).toEqual([{ url: "http://edge.test", description: "This service" }]);
    const ops = operations(doc);
    // The table describes exactly the routes there are: a new route without an entry fails here.
    expect(ops.map((o) => o.key).sort()).toEqual(Object.keys(OPERATIONS).sort());
    const ids = ops.map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { key, op } of ops) expect(op.description?.length ?? 0, key).toBeGreaterThan(20);
    const declared = (doc.tags ?? []).map((t) => t.name);
    expect(declared).toEqual(TAGS.map((t) => t.name));
    expect((doc.tags ?? []).every((t) => (t.description ?? "").length > 0)).toBe(true);
    expect([...new Set(ops.flatMap((o) => o.op.tags ?? []))].sort()).toEqual([...declared].sort());
  });

  it("passes redocly lint's recommended rules with no error and no warning but the missing licence", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "edge-tasks-openapi-"));
    try {
      const file = path.join(dir, "openapi.json");
      writeFileSync(file, JSON.stringify(await openapiDocument()));
      // Exit status 1 on errors; the JSON report says what it found either way.
      const run = await promisify(execFile)(redocly, ["lint", file, "--format=json"], {
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
      }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? "" }));
      const report = JSON.parse(run.stdout) as { problems: { ruleId: string; severity: string; message: string }[] };
      const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message}`);
      // The package is private and has no licence to name.
      expect(problems.filter((p) => !p.startsWith("warn info-license:"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serves the reference at /docs with a CSP that allows same-origin scripts only, none inline", async () => {
    const app = createApp();
    const res = await app.request("/docs");
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/https?:/);
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1] ?? "");
    expect(scripts.length).toBeGreaterThan(0);
    for (const attrs of scripts) expect(attrs).toMatch(/^\s*src="\/[^/]/);
    expect(html).not.toMatch(/https?:\/\//);
    const init = await app.request("/docs/init.js");
    expect(init.status).toBe(200);
    expect(init.headers.get("content-type")).toMatch(/javascript/);
    expect(await init.text()).toContain('"/openapi.json"');
  });
});

import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN, call, ORIGIN, tenant } from "./helpers";
import { registerHandler } from "../src/handlers/registry";

registerHandler({ type: "auth_noop", run: async () => ({ ok: true }) });

describe("admin API", () => {
  it("refuses a missing or wrong admin token with 401", async () => {
    expect((await call("/v1/namespaces")).status).toBe(401);
    const wrong = await call("/v1/namespaces", { token: "nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ success: false, status: 401, error: { type: "unauthorized" } });
  });

  it("creates a namespace with default settings and refuses a duplicate name", async () => {
    const res = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: "acme-prod" } });
    expect(res.status).toBe(201);
    expect(res.body.namespace_id).toMatch(/^ns_[a-z0-9]{20}$/);
    expect(res.body.settings).toEqual({
      max_concurrent_tasks: 100,
      processing_timeout_seconds: 1800,
      requests_per_second: 100,
      max_concurrent_per_key: null,
      max_webhooks: 20,
      max_processors: 100,
      max_open_streams: 1000,
      max_unfinished_tasks: 1_000_000,
      max_collections: 100,
    });
    const again = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: "acme-prod" } });
    expect(again.status).toBe(409);
    const byName = await call("/v1/namespaces/acme-prod", { token: ADMIN });
    const byId = await call(`/v1/namespaces/${res.body.namespace_id}`, { token: ADMIN });
    expect(byName.body).toEqual(res.body);
    expect(byId.body).toEqual(res.body);
  });

  it("validates settings and refuses unknown fields", async () => {
    const bad = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: "x1", settings: { max_concurrent_tasks: 0 } } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.type).toBe("validation_error");
    const extra = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: "x2", owner: "me" } });
    expect(extra.status).toBe(422);
    const reserved = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: "ns_abc" } });
    expect(reserved.status).toBe(422);
  });

  it("shows an API key's secret only at creation and lists keys without secrets", async () => {
    const t = await tenant();
    const list = await call(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN });
    expect(list.status).toBe(200);
    expect(list.body.results).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain(t.key);
    expect(list.body.results[0]).not.toHaveProperty("api_key");
  });
});

describe("API keys", () => {
  it("refuses missing and unknown keys with 401", async () => {
    expect((await call("/v1/tasks/stats")).status).toBe(401);
    expect((await call("/v1/tasks/stats", { token: "sk_unknown" })).status).toBe(401);
    expect((await call("/v1/tasks/stats", { token: "not-a-key" })).status).toBe(401);
    expect((await call("/v1/tasks/stats", { headers: { Authorization: "Basic abc" } })).status).toBe(401);
  });

  it("refuses a revoked key", async () => {
    const t = await tenant();
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(200);
    const keys = await call(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN });
    const keyId = keys.body.results[0].key_id;
    const revoked = await call(`/v1/namespaces/${t.name}/api-keys/${keyId}`, { token: ADMIN, method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(401);
    const listed = await call(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN });
    expect(listed.body.results[0].revoked_at).not.toBeNull();
  });

  it("answers 403 when X-Namespace names another namespace, and accepts its own id or name", async () => {
    const a = await tenant();
    const b = await tenant();
    expect((await call("/v1/tasks/stats", { token: a.key, headers: { "X-Namespace": b.name } })).status).toBe(403);
    expect((await call("/v1/tasks/stats", { token: a.key, headers: { "X-Namespace": "nonexistent" } })).status).toBe(403);
    expect((await call("/v1/tasks/stats", { token: a.key, headers: { "X-Namespace": a.name } })).status).toBe(200);
    expect((await call("/v1/tasks/stats", { token: a.key, headers: { "X-Namespace": a.namespaceId } })).status).toBe(200);
  });

  it("hides another namespace's task behind 404", async () => {
    const a = await tenant();
    const b = await tenant();
    const created = await call("/v1/tasks", { token: a.key, body: { task_type: "auth_noop" } });
    expect(created.status).toBe(201);
    const id = created.body.task_id;
    for (const [method, path] of [["GET", `/v1/tasks/${id}`], ["POST", `/v1/tasks/${id}/cancel`], ["GET", `/v1/tasks/${id}/logs`]] as const) {
      const res = await call(path, { token: b.key, method });
      expect(res.status, path).toBe(404);
      expect(res.body.error.type).toBe("not_found");
    }
  });
});

describe("request hygiene", () => {
  it("answers malformed JSON with 400 invalid_json", async () => {
    const t = await tenant();
    const res = await call("/v1/tasks", { token: t.key, rawBody: "{not json", headers: { "Content-Type": "application/json" } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, status: 400, error: { type: "invalid_json" } });
  });

  it("refuses a body that is not sent as JSON", async () => {
    const t = await tenant();
    const res = await call("/v1/tasks", { token: t.key, rawBody: '{"task_type":"auth_noop"}', headers: { "Content-Type": "text/plain" } });
    expect(res.status).toBe(400);
  });

  it("refuses unknown and invalid fields with 422 and creates nothing", async () => {
    const t = await tenant();
    for (const body of [
      { task_type: "auth_noop", status: "completed" },
      { task_type: "auth_noop", namespace_id: "ns_x" },
      { task_type: "auth_noop", attempt: 3 },
      { task_type: "Bad-Type" },
      { task_type: "auth_noop", priority: 10 },
      { task_type: "auth_noop", max_attempts: 0 },
      { task_type: "auth_noop", inputs: [1, 2] },
      { task_type: "no_such_type" },
      {},
    ]) {
      const res = await call("/v1/tasks", { token: t.key, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.error.type).toBe("validation_error");
    }
    const stats = await call("/v1/tasks/stats", { token: t.key });
    expect(stats.body).toMatchObject({ created: 0, queued: 0, processing: 0 });
  });

  it("refuses oversized bodies and inputs with 413", async () => {
    const t = await tenant();
    const big = await call("/v1/tasks", { token: t.key, body: { task_type: "auth_noop", inputs: { blob: "x".repeat(1024 * 1024 + 10) } } });
    expect(big.status).toBe(413);
    expect(big.body.error.type).toBe("payload_too_large");
    const inputs = await call("/v1/tasks", { token: t.key, body: { task_type: "auth_noop", inputs: { blob: "x".repeat(70 * 1024) } } });
    expect(inputs.status).toBe(413);
  });

  it("checks a body's stated length and type as it checks a streamed body's", async () => {
    const t = await tenant();
    const stated = (text: string, type = "application/json") =>
      call("/v1/tasks", { token: t.key, rawBody: text, headers: { "Content-Type": type, "Content-Length": String(new TextEncoder().encode(text).byteLength) } });
    const big = await stated(JSON.stringify({ task_type: "auth_noop", padding: "x".repeat(1024 * 1024 + 10) }));
    expect(big.status).toBe(413);
    expect(big.body.error.type).toBe("payload_too_large");
    const plain = await stated('{"task_type":"auth_noop"}', "text/plain");
    expect(plain.status).toBe(400);
    expect(plain.body.error.type).toBe("invalid_json");
    const fits = await stated('{"task_type":"auth_noop"}');
    expect(fits.status, JSON.stringify(fits.body)).not.toBe(413);
    expect(fits.status).not.toBe(400);
  });

  it("answers unknown routes with 404 in the error shape", async () => {
    const res = await call("/v1/nothing-here", { token: "sk_x" });
    expect([401, 404]).toContain(res.status);
    const root = await call("/nope");
    expect(root.status).toBe(404);
    expect(root.body.error.type).toBe("not_found");
  });
});

describe("credentials before the body", () => {
  /** Sends a request whose body gives one chunk and then neither more nor an end. */
  async function withEndlessBody(path: string, headers: Record<string, string>): Promise<number | "no answer"> {
    let chunks = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (chunks++ === 0) {
          controller.enqueue(new TextEncoder().encode('{"task_type":"auth_noop","inputs":{"blob":"'));
          return;
        }
        return new Promise<void>(() => {});
      },
    });
    const request = new Request(`${ORIGIN}${path}`, { method: "POST", body, headers: { "Content-Type": "application/json", ...headers }, duplex: "half" } as RequestInit);
    // A server that waits for the body never answers: the guard turns that hang into a failure.
    const guard = new Promise<"no answer">((resolve) => setTimeout(() => resolve("no answer"), 5000));
    const answer = await Promise.race([exports.default.fetch(request).then((r) => r.status), guard]);
    return answer;
  }

  it("answers 401 to missing or unknown credentials while the body is still being sent", async () => {
    expect(await withEndlessBody("/v1/tasks", {})).toBe(401);
    expect(await withEndlessBody("/v1/tasks", { Authorization: "Bearer sk_unknown0000000000000000" })).toBe(401);
    expect(await withEndlessBody("/v1/buckets/any/objects/batch", { Authorization: "Bearer sk_unknown0000000000000000" })).toBe(401);
    expect(await withEndlessBody("/v1/namespaces", { Authorization: "Bearer not-the-admin-token" })).toBe(401);
    expect(await withEndlessBody("/v1/tasks/tsk_x/callback/progress", {})).toBe(401);
    expect(await withEndlessBody("/v1/tasks/tsk_x/callback/progress", { Authorization: "Bearer not-a-callback-token" })).toBe(401);
    const t = await tenant();
    expect(await withEndlessBody("/v1/tasks/tsk_x/callback/progress", { Authorization: `Bearer ${t.namespaceId}.${"f".repeat(43)}` })).toBe(401);
  });
});

import { describe, expect, it, onTestFinished } from "vitest";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { ADMIN, call, tenant } from "./helpers";

const JSON_TYPE = { "Content-Type": "application/json" };

describe("a request sent as JSON with no body", () => {
  it("lists tasks as if {} had been sent (POST /v1/tasks/list, whose body is optional)", async () => {
    const processor = fakeProcessor(() => new Response("accepted", { status: 202 }));
    onTestFinished(() => processor.restore());
    const t = await tenant();
    await call("/v1/processors/jb_work", { method: "PUT", token: t.key, body: { url: PROCESSOR_URL } });
    const created = await call("/v1/tasks", { token: t.key, body: { task_type: "jb_work" } });
    expect(created.status).toBe(201);
    const bodyless = await call("/v1/tasks/list", { method: "POST", token: t.key, rawBody: "", headers: JSON_TYPE });
    expect(bodyless.status, JSON.stringify(bodyless.body)).toBe(200);
    const withEmptyObject = await call("/v1/tasks/list", { token: t.key, body: {} });
    expect(withEmptyObject.status).toBe(200);
    expect(bodyless.body.results.map((r: { task_id: string }) => r.task_id)).toEqual([created.body.task_id]);
    expect(bodyless.body.pagination).toEqual(withEmptyObject.body.pagination);
    const noType = await call("/v1/tasks/list", { method: "POST", token: t.key });
    expect(noType.status).toBe(200);
  });

  it("creates an API key with the optional body left out", async () => {
    const t = await tenant();
    const res = await call(`/v1/namespaces/${t.name}/api-keys`, { method: "POST", token: ADMIN, rawBody: "", headers: JSON_TYPE });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.api_key).toMatch(/^sk_/);
  });

  it("on a route that needs a body, names the missing field (422) and creates nothing", async () => {
    const t = await tenant();
    const res = await call("/v1/tasks", { method: "POST", token: t.key, rawBody: "", headers: JSON_TYPE });
    expect(res.status).toBe(422);
    expect(res.body.error.type).toBe("validation_error");
    expect(res.body.error.message).toContain("task_type");
    const list = await call("/v1/tasks", { token: t.key });
    expect(list.body.results).toEqual([]);
  });

  it("still answers a malformed body with 400 invalid_json, also on an optional-body route", async () => {
    const t = await tenant();
    const res = await call("/v1/tasks/list", { method: "POST", token: t.key, rawBody: "{", headers: JSON_TYPE });
    expect(res.status).toBe(400);
    expect(res.body.error.type).toBe("invalid_json");
  });
});

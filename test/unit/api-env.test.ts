import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { describe, expect, it } from "vitest";
import { type AppEnv, newApp, requestOrigin } from "../../src/api/env";
import { IdempotencyHeader } from "../../src/api/schemas";
import { ApiError } from "../../src/errors";

// newApp registers each gated route's handlers as one (src/api/env.ts), relying on
// @hono/zod-openapi handing them to `on` while `openapi()` runs. These pin that reliance: an
// upgrade that registers routes another way fails here, not in production.

const route = (path: string, headers?: typeof IdempotencyHeader) =>
  createRoute({
    method: "post",
    path,
    request: { body: { content: { "application/json": { schema: z.object({ n: z.number() }) } }, required: true }, ...(headers ? { headers } : {}) },
    responses: { 200: { description: "ok", content: { "application/json": { schema: z.object({ n: z.number() }) } } } },
  });

describe("a gated app's routes", () => {
  it("are one router entry each, running the gate, the route's middleware, its validation and its handler in order", async () => {
    const order: string[] = [];
    const gate: MiddlewareHandler<AppEnv> = async (_c, next) => {
      order.push("gate");
      await next();
      order.push("gate after");
    };
    const app = newApp([gate]);
    const own: MiddlewareHandler<AppEnv> = async (_c, next) => {
      order.push("own");
      await next();
    };
    app.openapi({ ...route("/x"), middleware: [own] }, (c) => {
      order.push("handler");
      return c.json({ n: c.req.valid("json").n + 1 }, 200);
    });
    expect(app.routes.filter((r) => r.path === "/x")).toHaveLength(1);
    const ok = await app.request("/x", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 1 }) });
    expect([ok.status, await ok.json()]).toEqual([200, { n: 2 }]);
    expect(order).toEqual(["gate", "own", "handler", "gate after"]);
    const bad = await app.request("/x", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: "one" }) });
    expect(bad.status).toBe(422);
  });

  it("answer an error where it was thrown, so the middleware before it sees that answer after next()", async () => {
    const seen: number[] = [];
    const gate: MiddlewareHandler<AppEnv> = async (c, next) => {
      await next();
      seen.push(c.res.status);
    };
    const app = newApp([gate]);
    app.openapi(route("/y"), () => {
      throw new ApiError("conflict", "taken");
    });
    const res = await app.request("/y", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 1 }) });
    expect(res.status).toBe(409);
    expect(seen).toEqual([409]);
  });

  it("keep the Idempotency-Key header in the OpenAPI document, though the middleware checks it", () => {
    const app = newApp([async (_c, next) => next()]);
    app.openapi(route("/z", IdempotencyHeader), (c) => c.json({ n: 0 }, 200));
    const doc = app.getOpenAPIDocument({ openapi: "3.0.0", info: { title: "t", version: "1" } });
    const parameters = (doc.paths["/z"]?.post?.parameters ?? []) as { in: string; name: string }[];
    expect(parameters.map((p) => `${p.in} ${p.name}`)).toContain("header idempotency-key");
  });
});

describe("requestOrigin", () => {
  const originOf = (url: string) => requestOrigin({ req: { url } } as Context);

  it("answers each request's own origin as the host changes, not the last one parsed", () => {
    expect(originOf("http://a.example/v1/tasks")).toBe("http://a.example");
    expect(originOf("http://a.example/v1/tasks/tsk_1/cancel?x=1")).toBe("http://a.example");
    expect(originOf("https://b.example:8443/v1/tasks")).toBe("https://b.example:8443");
    expect(originOf("https://b.example:443/v1/tasks")).toBe("https://b.example");
    expect(originOf("http://a.example/v1/tasks")).toBe("http://a.example");
  });

  it("parses an authority that is not plain as the URL parser reads it", () => {
    expect(originOf("http://a.example?next=/v1/tasks")).toBe("http://a.example");
    expect(originOf("http://a.example#/v1")).toBe("http://a.example");
    expect(originOf("http://a.example\\v1/tasks")).toBe("http://a.example");
    expect(originOf("http://user@c.example/v1/tasks")).toBe("http://c.example");
  });
});

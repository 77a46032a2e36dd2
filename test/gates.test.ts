import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ORIGIN } from "./helpers";

type Operation = { security?: Record<string, string[]>[] };
type Document = { paths: Record<string, Record<string, Operation>> };

/** Every operation of the document, with a concrete path (parameters filled with plausible ids). */
async function operations(): Promise<{ method: string; path: string; schemes: string[] }[]> {
  const doc = (await (await exports.default.fetch(new Request(`${ORIGIN}/openapi.json`))).json()) as Document;
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      path: path.replace(/\{[^}]+\}/g, (p) => (p === "{task_type}" ? "some_type" : "x_0000000000000000000")),
      schemes: (op.security ?? []).flatMap((s) => Object.keys(s)),
    })),
  );
}

describe("every route is gated where it is declared", () => {
  it("answers 401 to every operation that names a security scheme, when no credentials are sent, before reading a body", async () => {
    const ops = await operations();
    const secured = ops.filter((o) => o.schemes.length > 0);
    expect(secured.length).toBeGreaterThan(50);
    for (const op of secured) {
      const hasBody = op.method === "POST" || op.method === "PUT" || op.method === "PATCH";
      const res = await exports.default.fetch(
        new Request(`${ORIGIN}${op.path}`, {
          method: op.method,
          // A body that is not JSON at all: a route that read it before its gate would answer 400, not 401.
          ...(hasBody ? { body: "not json", headers: { "Content-Type": "application/json" } } : {}),
        }),
      );
      expect(res.status, `${op.method} ${op.path}`).toBe(401);
      await res.arrayBuffer();
    }
  });

  it("answers 401 to a wrong kind of credential: an admin token on a namespace's route, an API key on the admin API", async () => {
    const ops = await operations();
    const apiKeyOnly = ops.filter((o) => o.schemes.length === 1 && o.schemes[0] === "apiKey").slice(0, 10);
    const adminOnly = ops.filter((o) => o.schemes.length === 1 && o.schemes[0] === "adminToken");
    expect(apiKeyOnly.length).toBeGreaterThan(0);
    expect(adminOnly.length).toBeGreaterThan(0);
    for (const op of apiKeyOnly) {
      const res = await exports.default.fetch(new Request(`${ORIGIN}${op.path}`, { method: op.method, headers: { Authorization: "Bearer test-admin-token" } }));
      expect(res.status, `${op.method} ${op.path}`).toBe(401);
      await res.arrayBuffer();
    }
    for (const op of adminOnly) {
      const res = await exports.default.fetch(new Request(`${ORIGIN}${op.path}`, { method: op.method, headers: { Authorization: "Bearer sk_not_a_real_key_at_all" } }));
      expect(res.status, `${op.method} ${op.path}`).toBe(401);
      await res.arrayBuffer();
    }
  });
});

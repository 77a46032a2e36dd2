import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { KeyPrincipal } from "../db/keys";
import { errorBody } from "../errors";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    principal: KeyPrincipal;
    /** Set by the idempotency middleware when the request carries an Idempotency-Key. */
    idempotency?: { key: string; requestHash: string };
  };
}

/**
 * A Hono app whose every request-validation failure is answered as SPEC §3's
 * `validation_error`, with the failing fields in `details`. `gate` runs before every route of
 * the app, ahead of the route's own middleware and validators: the sub-app says who may call
 * its routes (src/api/gate.ts), and no path pattern elsewhere decides it.
 */
export function newApp(gate: MiddlewareHandler<AppEnv>[] = []): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message, code: i.code }));
      return c.json(errorBody("validation_error", describeIssues(issues), { issues }), 422);
    },
  });
  if (gate.length === 0) return app;
  const register = app.openapi.bind(app);
  app.openapi = ((route, handler, hook) => {
    const own = route.middleware === undefined ? [] : Array.isArray(route.middleware) ? route.middleware : [route.middleware];
    return register({ ...route, middleware: [...gate, ...own] }, handler, hook);
  }) as typeof app.openapi;
  return app;
}

function describeIssues(issues: { path: string; message: string }[]): string {
  const first = issues[0];
  if (!first) return "invalid request";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return `${first.path || "body"}: ${first.message}${more}`;
}

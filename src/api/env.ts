import { OpenAPIHono } from "@hono/zod-openapi";
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
 * `validation_error`, with the failing fields in `details`.
 */
export function newApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message, code: i.code }));
      return c.json(errorBody("validation_error", describeIssues(issues), { issues }), 422);
    },
  });
}

function describeIssues(issues: { path: string; message: string }[]): string {
  const first = issues[0];
  if (!first) return "invalid request";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return `${first.path || "body"}: ${first.message}${more}`;
}

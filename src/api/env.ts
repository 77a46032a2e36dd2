import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler, Next } from "hono";
import { HTTPException } from "hono/http-exception";
import type { KeyPrincipal } from "../db/keys";
import { ApiError, errorBody } from "../errors";
import { IdempotencyHeader } from "./schemas";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    principal: KeyPrincipal;
    /** Set by the idempotency middleware when the request carries an Idempotency-Key. */
    idempotency?: { key: string; requestHash: string };
    /** Set by a callback's gate (callback-auth.ts): the attempt's token, checked, and its namespace. */
    callback?: { token: string; namespaceId: string };
  };
}

/**
 * SPEC §3's answer to an error thrown anywhere in a route: the app's onError, and what each
 * chained route (below) answers at the handler that threw.
 */
export function answerError(err: Error, c: Context<AppEnv>): Response {
  if (err instanceof ApiError) {
    for (const [name, value] of Object.entries(err.headers)) c.header(name, value);
    return c.json(err.toBody(), err.status);
  }
  if (err instanceof HTTPException && err.status === 400) {
    return c.json(errorBody("invalid_json", "the request body is not valid JSON"), 400);
  }
  console.error(`unhandled error on ${c.req.method} ${c.req.path}`, err);
  return c.json(errorBody("internal_error", "internal error"), 500);
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
  const addRoute = app.on;
  app.openapi = ((route, handler, hook) => {
    const own = route.middleware === undefined ? [] : Array.isArray(route.middleware) ? route.middleware : [route.middleware];
    const { middleware: _documentedWithout, hide, ...documented } = route;
    let served = { ...route, middleware: [...gate, ...own] };
    if (route.request?.headers === IdempotencyHeader) {
      // The Idempotency-Key header is checked by the idempotency middleware; its schema (an
      // optional string, which every header value is) only documents it, so it is not run.
      if (!hide) app.openAPIRegistry.registerPath(documented);
      const { headers: _checkedByMiddleware, ...request } = route.request;
      served = { ...served, request, hide: true };
    }
    // OpenAPIHono hands the route's handlers to `on`; they are registered as one (chain()).
    app.on = ((method: string[], paths: string[], ...handlers: MiddlewareHandler<AppEnv>[]) =>
      addRoute(method, paths, chain(handlers))) as typeof app.on;
    try {
      return register(served, handler, hook);
    } finally {
      app.on = addRoute;
    }
  }) as typeof app.openapi;
  return app;
}

/**
 * A route's handlers (gate, middleware, validators, handler) run as one handler: Hono's router
 * then holds one entry per route instead of one per handler, and a request matched by a single
 * entry skips Hono's compose. As in Hono's compose, an error becomes its response at the handler
 * that threw, so a middleware sees that response after next() (the idempotency middleware
 * stores a 4xx and frees its key on a 5xx) exactly as before. Unlike Hono's compose it leaves
 * `c.req.routeIndex` alone: every handler of the chain is the router's one match.
 */
function chain(handlers: MiddlewareHandler<AppEnv>[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let index = -1;
    const dispatch = async (i: number): Promise<void> => {
      if (i <= index) throw new Error("next() called multiple times");
      index = i;
      const handler: ((c: Context<AppEnv>, next: Next) => Promise<Response | void>) | undefined = i < handlers.length ? handlers[i] : i === handlers.length ? next : undefined;
      if (handler === undefined) return;
      let res: Response | void;
      let isError = false;
      try {
        res = await handler(c, () => dispatch(i + 1));
      } catch (err) {
        if (!(err instanceof Error)) throw err;
        c.error = err;
        res = answerError(err, c);
        isError = true;
      }
      if (res && (!c.finalized || isError)) c.res = res;
    };
    await dispatch(0);
    return c.finalized ? c.res : undefined;
  };
}

/** The last scheme and authority requestOrigin parsed, and its origin: an isolate serves one host or few. */
let knownAuthority = "";
let knownOrigin = "";

/**
 * The origin of the request's URL, the base of the callback URLs a task is given. Parsing the
 * whole URL per request was a measurable share of a create (issue 11); the origin depends only
 * on what comes before the path, so it is parsed again only when that changes.
 */
export function requestOrigin(c: Context): string {
  const url = c.req.url;
  const end = url.indexOf("/", url.indexOf("//") + 2);
  const authority = end < 0 ? "" : url.slice(0, end);
  // Only a plain "scheme://host[:port]" ahead of the path decides the origin alone.
  if (authority === "" || /[?#\\]/.test(authority)) return new URL(url).origin;
  if (authority !== knownAuthority) {
    knownOrigin = new URL(url).origin;
    knownAuthority = authority;
  }
  return knownOrigin;
}

function describeIssues(issues: { path: string; message: string }[]): string {
  const first = issues[0];
  if (!first) return "invalid request";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return `${first.path || "body"}: ${first.message}${more}`;
}

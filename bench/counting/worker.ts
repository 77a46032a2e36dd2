// The Worker as `npm run bench` runs it (`wrangler dev bench/counting/worker.ts`): the production
// Worker and NamespaceDO, unchanged, each handed an Env that counts Durable Object requests, D1
// statements and queue messages (bench/counting/env.ts). Two routes exist only in this build,
// behind the admin token: GET /__bench/counts and POST /__bench/counts/reset. A request with the
// header `x-bench-uncounted` (the bench's own polling) runs on the plain Env and is not counted.
import worker from "../../src/index";
import { NamespaceDO as ProductionNamespaceDO } from "../../src/namespace/do";
import { countAlarm, countingEnv, currentCounts, isolateId, resetCounts } from "./env";

export class NamespaceDO extends ProductionNamespaceDO {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, countingEnv(env, "object"));
  }

  override alarm(): Promise<void> {
    countAlarm();
    return super.alarm();
  }

  /** The isolate this object runs in: the bench checks it is the Worker's (then one set of counters sees all). */
  benchIsolate(): string {
    return isolateId();
  }
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

async function countsRoute(request: Request, env: Env): Promise<Response> {
  if (request.headers.get("authorization") !== `Bearer ${env.ADMIN_TOKEN}`) return json({ error: { code: "unauthorized", message: "the admin token is required" } }, 401);
  const url = new URL(request.url);
  if (request.method === "POST" && url.pathname === "/__bench/counts/reset") return json(resetCounts());
  if (request.method !== "GET" || url.pathname !== "/__bench/counts") return json({ error: { code: "not_found", message: "no such bench route" } }, 404);
  // ?probe=<namespace_id>: asks that namespace's object which isolate it runs in (not counted).
  const probe = url.searchParams.get("probe");
  const stub = probe ? (env.NAMESPACE.getByName(probe) as unknown as { benchIsolate(): Promise<string> }) : null;
  const objectIsolate = stub ? await stub.benchIsolate() : null;
  return json({ ...currentCounts(), isolate: isolateId(), ...(stub ? { object_isolate: objectIsolate, shared_isolate: objectIsolate === isolateId() } : {}) });
}

export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname.startsWith("/__bench/")) return countsRoute(request, env);
    return worker.fetch(request, request.headers.has("x-bench-uncounted") ? env : countingEnv(env, "worker"), ctx);
  },
  // Reflect.apply passes the context on too, should the production handlers come to take it.
  queue(batch, env, ctx): Promise<void> {
    return Reflect.apply(worker.queue, worker, [batch, countingEnv(env, "worker"), ctx]);
  },
  scheduled(controller, env, ctx): Promise<void> {
    return Reflect.apply(worker.scheduled, worker, [controller, countingEnv(env, "worker"), ctx]);
  },
} satisfies ExportedHandler<Env>;

// The Worker as `npm run bench` runs it (`wrangler dev bench/counting/worker.ts`): the production
// Worker and NamespaceDO, unchanged, each handed an Env that counts Durable Object requests, D1
// statements and queue messages (bench/counting/env.ts). Two routes exist only in this build,
// behind the admin token: GET /__bench/counts and POST /__bench/counts/reset. A request with the
// header `x-bench-uncounted` (the bench's own polling) runs on the plain Env and is not counted.
import worker from "../../src/index";
import type { BulkCancelFilter } from "../../src/namespace/bulk";
import { NamespaceDO as ProductionNamespaceDO } from "../../src/namespace/do";
import type { BulkCancelResult } from "../../src/namespace/fair-ops";
import { yieldTurn } from "../../src/namespace/turn";
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

  // Seams of bench/fair-dev.mjs (issue 14's bulk cancel under wrangler dev), read through the
  // /__bench/fair/* routes: the step lengths of the last bulk cancel (the public route answers
  // only `cancelled`), a ticker inside the object, and what the outbox still holds.
  private lastBulkCancel: BulkCancelResult | null = null;
  private ticking = false;

  override async bulkCancel(filter: BulkCancelFilter): Promise<BulkCancelResult> {
    this.lastBulkCancel = await super.bulkCancel(filter);
    return this.lastBulkCancel;
  }

  benchLastBulkCancel(): BulkCancelResult | null {
    return this.lastBulkCancel;
  }

  /** Rows the alarm has yet to write to D1 or deliver. */
  benchOutboxLeft(): number {
    const row = this.ctx.storage.sql
      .exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM record_outbox) + (SELECT COUNT(*) FROM delivery_outbox) AS n")
      .one();
    return row.n;
  }

  /**
   * Turns of the object's event loop until benchTickerStop(): each gap between two is the
   * longest any event arriving then waited, so the longest gap is the longest the object was
   * held at once, by whatever held it (a cancel step, a chunk of the alarm, a call).
   */
  async benchTicker(): Promise<number[]> {
    const gaps: number[] = [];
    this.ticking = true;
    let last = performance.now();
    while (this.ticking) {
      await yieldTurn();
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    return gaps;
  }

  benchTickerStop(): boolean {
    const was = this.ticking;
    this.ticking = false;
    return was;
  }
}

/** GET|POST /__bench/fair/{last-bulk-cancel,outbox,ticker,ticker-stop}?ns=<namespace_id>. */
async function fairRoute(url: URL, env: Env): Promise<Response | null> {
  const seam = url.pathname.slice("/__bench/fair/".length);
  const ns = url.searchParams.get("ns");
  if (!ns) return null;
  const object = env.NAMESPACE.getByName(ns) as unknown as DurableObjectStub<NamespaceDO>;
  if (seam === "last-bulk-cancel") return json(await object.benchLastBulkCancel());
  if (seam === "outbox") return json({ left: await object.benchOutboxLeft() });
  if (seam === "ticker") return json({ gaps: await object.benchTicker() });
  if (seam === "ticker-stop") return json({ stopped: await object.benchTickerStop() });
  return null;
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

async function countsRoute(request: Request, env: Env): Promise<Response> {
  if (request.headers.get("authorization") !== `Bearer ${env.ADMIN_TOKEN}`) return json({ error: { code: "unauthorized", message: "the admin token is required" } }, 401);
  const url = new URL(request.url);
  if (url.pathname.startsWith("/__bench/fair/")) return (await fairRoute(url, env)) ?? json({ error: { code: "not_found", message: "no such bench route" } }, 404);
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

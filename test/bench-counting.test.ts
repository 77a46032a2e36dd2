import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createExecutionContext } from "cloudflare:test";
import { countingEnv, currentCounts, resetCounts } from "../bench/counting/env";
import bench from "../bench/counting/worker";
import { ADMIN, tenant } from "./helpers";

/**
 * The bench's counting Env (bench/counting/env.ts): what it counts is what `npm run bench`
 * divides into counts per task and ceilings, so each kind of call must count exactly once.
 */
describe("the bench's counting Env", () => {
  it("counts a statement run alone once, a batch once per statement, as one round trip each", async () => {
    const counted = countingEnv(env, "worker");
    resetCounts();
    await counted.DB.prepare("SELECT ? AS n").bind(1).first();
    await counted.DB.prepare("SELECT 1 AS n").all();
    await counted.DB.batch([counted.DB.prepare("SELECT 1"), counted.DB.prepare("SELECT ?").bind(2), counted.DB.prepare("SELECT 3")]);
    expect(currentCounts().worker).toMatchObject({ d1Statements: 5, d1Calls: 3 });
    expect(currentCounts().object.d1Statements).toBe(0);
  });

  it("counts each RPC on a namespace stub by method, and queue messages one by one", async () => {
    const t = await tenant();
    // A queue that keeps what it is sent: nothing reaches a consumer.
    const sent: unknown[] = [];
    const queue = { send: async (body: unknown) => void sent.push(body), sendBatch: async (messages: { body: unknown }[]) => void sent.push(...messages.map((m) => m.body)) };
    const counted = countingEnv({ ...env, TASKS_DLQ: queue as unknown as Queue }, "object");
    resetCounts();
    const stub = counted.NAMESPACE.getByName(t.namespaceId) as unknown as { getSettings(): Promise<unknown>; stats(): Promise<unknown> };
    await stub.getSettings();
    await stub.stats();
    await stub.stats();
    await counted.TASKS_DLQ.sendBatch([{ body: { probe: 1 } }, { body: { probe: 2 } }]);
    await counted.TASKS_DLQ.send({ probe: 3 });
    expect(currentCounts().object).toMatchObject({ doCalls: 3, queueMessages: 3, byMethod: { getSettings: 1, stats: 2 } });
    expect(currentCounts().worker.doCalls).toBe(0);
    expect(sent).toEqual([{ probe: 1 }, { probe: 2 }, { probe: 3 }]);
  });

  it("wraps an Env once, and a reset starts every counter from zero", async () => {
    expect(countingEnv(env, "worker")).toBe(countingEnv(env, "worker"));
    await countingEnv(env, "worker").DB.prepare("SELECT 1").run();
    const before = resetCounts();
    expect(before.worker.d1Statements).toBeGreaterThan(0);
    expect(currentCounts()).toEqual({ worker: expect.objectContaining({ doCalls: 0, d1Statements: 0, queueMessages: 0 }), object: expect.objectContaining({ doCalls: 0, alarms: 0 }) });
  });

  it("serves the counts only to the admin token, and runs a request marked uncounted on the plain Env", async () => {
    const ask = (path: string, headers: Record<string, string> = {}, method = "GET") =>
      bench.fetch(new Request(`http://bench.test${path}`, { method, headers }), env, createExecutionContext());
    expect((await ask("/__bench/counts")).status).toBe(401);
    expect((await ask("/__bench/counts", { authorization: "Bearer not-the-admin" })).status).toBe(401);
    const admin = { authorization: `Bearer ${ADMIN}` };
    await ask("/__bench/counts/reset", admin, "POST");
    const t = await tenant();
    await ask("/v1/tasks/stats", { authorization: `Bearer ${t.key}`, "x-bench-uncounted": "1" });
    expect((await (await ask("/__bench/counts", admin)).json<{ worker: { doCalls: number } }>()).worker.doCalls).toBe(0);
    await ask("/v1/tasks/stats", { authorization: `Bearer ${t.key}` });
    expect((await (await ask("/__bench/counts", admin)).json<{ worker: { doCalls: number } }>()).worker.doCalls).toBeGreaterThan(0);
  });
});

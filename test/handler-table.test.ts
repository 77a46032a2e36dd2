import { z } from "@hono/zod-openapi";
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ReportBatcher } from "../src/consumer/batcher";
import { runBuiltin, runBuiltinBatch } from "../src/consumer/builtin";
import { registerHandler } from "../src/handlers/registry";
import { BUILTIN_HANDLERS, handlerFor } from "../src/handlers/table";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import { type NamespaceStub, namespaceStub } from "../src/namespace/stub";
import { BUILTIN_TASK_INPUTS } from "../src/tasks/builtin-types";
import { call, createTask, eventually, tenant, type Tenant, waitForStatus } from "./helpers";

/** Issue 12: one explicit handler table; the runner parses a task's inputs once, before its handler. */

const WithDefault = z.object({ n: z.number().int().default(7) }).strict();
registerHandler({ type: "ht_parsed", inputs: WithDefault, run: async (ctx) => ({ got: WithDefault.parse(ctx.inputs) }) });

const ran: string[] = [];
const batches: string[][] = [];
/** Registered again by the tests with a stricter schema: tasks created before no longer fit. */
const loose = z.object({ n: z.unknown() }).strict();
const strict = z.object({ n: z.number() }).strict();
const changing = (inputs: z.ZodType) =>
  registerHandler({
    type: "ht_changing",
    inputs,
    run: async (ctx) => (ran.push(ctx.task.task_id), { n: strict.parse(ctx.inputs).n }),
    runBatch: async (ctxs) => (batches.push(ctxs.map((c) => c.task.task_id)), ctxs.map((c) => ({ n: strict.parse(c.inputs).n }))),
  });
changing(loose);

async function captureSends(t: Tenant): Promise<TaskMessage[]> {
  const captured: TaskMessage[] = [];
  await runInDurableObject(env.NAMESPACE.getByName(t.namespaceId), (instance: NamespaceDO) => {
    instance.io.sendBatch = async (messages) => {
      captured.push(...messages.map((m) => m.body));
    };
  });
  return captured;
}

async function claimOf(t: Tenant, captured: TaskMessage[], taskId: string) {
  const message = await eventually(async () => captured.find((m) => m.task_id === taskId), 10_000, "the task's message");
  const claim = await namespaceStub(env, t.namespaceId).claim(message);
  if (!claim.claimed) throw new Error(claim.reason);
  return claim;
}

describe("the built-in handler table", () => {
  it("has one handler per built-in type, with that type's inputs schema", () => {
    expect(Object.keys(BUILTIN_HANDLERS).sort()).toEqual(Object.keys(BUILTIN_TASK_INPUTS).sort());
    for (const [type, handler] of Object.entries(BUILTIN_HANDLERS)) {
      expect(handler.type).toBe(type);
      expect(handler.inputs).toBe(BUILTIN_TASK_INPUTS[type as keyof typeof BUILTIN_TASK_INPUTS]);
      expect(handlerFor(type)).toBe(handler);
    }
    expect(handlerFor("no_such_type")).toBeUndefined();
  });
});

describe("a handler's inputs", () => {
  it("reach the handler parsed by its schema, and inputs that do not fit are refused at create", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "ht_parsed", inputs: {} });
    expect((await waitForStatus(t, task.task_id, "completed")).outputs).toEqual({ got: { n: 7 } });
    const refused = await call("/v1/tasks", { token: t.key, body: { task_type: "ht_parsed", inputs: { n: "seven" } } });
    expect(refused.status).toBe(422);
  });

  it("fail the task invalid_inputs, for good, when they no longer fit at run time; the handler never runs", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const lone = await createTask(t, { task_type: "ht_changing", inputs: { n: "one" } });
    const good = await createTask(t, { task_type: "ht_changing", inputs: { n: 2 } });
    const bad = await createTask(t, { task_type: "ht_changing", inputs: { n: "three" } });
    const other = await createTask(t, { task_type: "ht_changing", inputs: { n: 4 } });
    const claims = [await claimOf(t, captured, lone.task_id), await claimOf(t, captured, good.task_id), await claimOf(t, captured, bad.task_id), await claimOf(t, captured, other.task_id)];
    changing(strict);
    try {
      const stubFor = (): NamespaceStub => namespaceStub(env, t.namespaceId);
      await runBuiltin(stubFor, claims[0]!, env, 30);
      expect((await waitForStatus(t, lone.task_id, "failed")).error).toMatchObject({ code: "invalid_inputs", retryable: false });
      expect(ran).not.toContain(lone.task_id);

      // In a batch, the task that does not fit fails alone and is left out of the handler's call.
      const handler = handlerFor("ht_changing");
      if (!handler?.runBatch) throw new Error("ht_changing has no runBatch");
      const runBatch = handler.runBatch.bind(handler);
      await runBuiltinBatch(claims.slice(1), { inputs: handler.inputs, runBatch }, env, new ReportBatcher(stubFor), 30);
      expect((await waitForStatus(t, bad.task_id, "failed")).error).toMatchObject({ code: "invalid_inputs", retryable: false });
      expect((await waitForStatus(t, good.task_id, "completed")).outputs).toEqual({ n: 2 });
      expect((await waitForStatus(t, other.task_id, "completed")).outputs).toEqual({ n: 4 });
      expect(batches).toEqual([[good.task_id, other.task_id]]);
    } finally {
      changing(loose);
    }
  });
});

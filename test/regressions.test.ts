import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, stub, tenant, waitForStatus } from "./helpers";
import { fakeEndpoints } from "./fake-endpoint";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { query } from "./inspect";

registerHandler({ type: "reg_done", run: async () => ({}) });

let processor: ReturnType<typeof fakeProcessor> | null = null;
let endpoints: ReturnType<typeof fakeEndpoints> | null = null;
afterEach(() => {
  processor?.restore();
  endpoints?.restore();
  processor = null;
  endpoints = null;
});

describe("fixed: review findings", () => {
  it("never reuses a task's sequence number after finished tasks leave the Durable Object", async () => {
    const t = await tenant();
    const first = [];
    for (let i = 0; i < 3; i++) first.push(await createTask(t, { task_type: "reg_done" }));
    for (const task of first) await waitForStatus(t, task.task_id, "completed");
    await eventually(async () => ((await query(t, "SELECT task_id FROM tasks")).length === 0 ? true : undefined), 5000, "eviction");
    const newest = await createTask(t, { task_type: "reg_done" });
    await waitForStatus(t, newest.task_id, "completed");
    const listed = (await call("/v1/tasks?limit=2", { token: t.key })).body;
    expect(listed.results[0].task_id).toBe(newest.task_id);
    const rest = (await call(`/v1/tasks?limit=2&cursor=${listed.pagination.next_cursor}`, { token: t.key })).body.results as Task[];
    expect([...listed.results, ...rest].map((x: Task) => x.task_id)).toEqual([newest, ...first.reverse()].map((x) => x.task_id));
  });

  it("refuses a report that arrives after the timeout even before the alarm has run", async () => {
    const t = await tenant({ processing_timeout_seconds: 60 });
    processor = fakeProcessor();
    await call("/v1/processors/late_job", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 3600 } });
    const task = await createTask(t, { task_type: "late_job" });
    const { token } = (await eventually(async () => processor?.last(task.task_id))).body.callback;
    // Time passes, but no alarm runs.
    await runInDurableObject(stub(t), (i: NamespaceDO) => i.clock.advance(61_000));
    const late = await call(`/v1/tasks/${task.task_id}/callback/complete`, { token, body: { outputs: {} } });
    expect(late.status).toBe(409);
    expect(late.body.error.details.status).toBe("failed");
    expect((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.error.code).toBe("timeout");
  });

  it("counts only the filtered task types in include_total", async () => {
    const t = await tenant();
    await createTask(t, { task_type: "reg_done" });
    processor = fakeProcessor();
    await call("/v1/processors/other_kind", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    await createTask(t, { task_type: "other_kind" });
    const page = await call("/v1/tasks?task_type=reg_done&include_total=true", { token: t.key });
    expect(page.body.pagination.total).toBe(1);
  });

  it("forgets an Idempotency-Key after 24 h in the Durable Object too", async () => {
    const t = await tenant();
    const first = await call("/v1/tasks", { token: t.key, body: { task_type: "reg_done" }, headers: { "Idempotency-Key": "daily" } });
    await env.DB.prepare("UPDATE idempotency_keys SET expires_at = 0 WHERE idempotency_key = 'daily'").run();
    await runInDurableObject(stub(t), (i: NamespaceDO) => i.clock.advance(24 * 3600_000 + 1000));
    const next = await call("/v1/tasks", { token: t.key, body: { task_type: "reg_done" }, headers: { "Idempotency-Key": "daily" } });
    expect(next.status).toBe(201);
    expect(next.body.task_id).not.toBe(first.body.task_id);
  });

  it("pages webhooks and processors in the list shape, past a deleted cursor entry", async () => {
    const t = await tenant();
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await call("/v1/webhooks", { token: t.key, body: { url: `https://hooks.test/p${i}`, event_types: ["*"] } })).body.webhook_id);
    }
    const first = await call("/v1/webhooks?limit=1", { token: t.key });
    expect(first.body.results[0].webhook_id).toBe(ids[2]);
    await call(`/v1/webhooks/${ids[2]}`, { token: t.key, method: "DELETE" });
    const second = await call(`/v1/webhooks?limit=5&cursor=${first.body.pagination.next_cursor}`, { token: t.key });
    expect(second.body.results.map((w: { webhook_id: string }) => w.webhook_id)).toEqual([ids[1], ids[0]]);

    await call("/v1/processors/kind_a", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    await call("/v1/processors/kind_b", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    const procs = await call("/v1/processors?limit=1&include_total=true", { token: t.key });
    expect(procs.body.pagination).toMatchObject({ limit: 1, total: 2 });
    const more = await call(`/v1/processors?limit=1&cursor=${procs.body.pagination.next_cursor}`, { token: t.key });
    expect(more.body.results).toHaveLength(1);
    expect(more.body.results[0].task_type).not.toBe(procs.body.results[0].task_type);
  });

  it("replays a webhook test ping for the same Idempotency-Key instead of sending another", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const hook = (await call("/v1/webhooks", { token: t.key, body: { url: "https://hooks.test/ping-once", event_types: ["webhook.test"] } })).body;
    const a = await call(`/v1/webhooks/${hook.webhook_id}/test`, { token: t.key, method: "POST", headers: { "Idempotency-Key": "ping" } });
    const b = await call(`/v1/webhooks/${hook.webhook_id}/test`, { token: t.key, method: "POST", headers: { "Idempotency-Key": "ping" } });
    expect(b.body).toEqual(a.body);
    await eventually(async () => (endpoints?.at("ping-once").length ? true : undefined));
    expect(endpoints.at("ping-once")).toHaveLength(1);
  });
});

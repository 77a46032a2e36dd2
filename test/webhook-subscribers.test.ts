import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { fakeEndpoints } from "./fake-endpoint";
import { call, stub, tenant, type Tenant } from "./helpers";
import { query } from "./inspect";
import { hook } from "./webhook-driver";

/**
 * The object keeps its active webhook endpoints in memory for the fan-out of each event (it used
 * to read them for every event: four statements a task). Every change to an endpoint must show
 * at the very next event.
 */

const fannedOut = async (t: Tenant) =>
  (await query<{ webhook_id: string; event_type: string }>(t, "SELECT webhook_id, event_type FROM deliveries ORDER BY created_at, delivery_id")).map(
    (d) => `${d.webhook_id} ${d.event_type}`,
  );

/** A task of a pulled type nobody leases: created and queued, nothing more unless cancelled. */
async function newTask(t: Tenant): Promise<string> {
  const res = await call<{ task_id: string }>("/v1/tasks", { token: t.key, body: { task_type: "ws_hold" } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.task_id;
}

describe("webhook fan-out", () => {
  it("sees each endpoint created, re-subscribed, disabled, re-enabled and deleted at the next event", async () => {
    const endpoints = fakeEndpoints();
    try {
      const t = await tenant();
      expect((await call("/v1/processors/ws_hold", { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
      await newTask(t);
      expect(await fannedOut(t)).toEqual([]);

      const a = await hook(t, "a", ["task.created"]);
      await newTask(t);
      expect(await fannedOut(t)).toEqual([`${a.webhook_id} task.created`]);

      const patch = (body: unknown) => call(`/v1/webhooks/${a.webhook_id}`, { token: t.key, method: "PATCH", body });
      expect((await patch({ event_types: ["task.cancelled"] })).status).toBe(200);
      const cancelled = await newTask(t);
      await call(`/v1/tasks/${cancelled}/cancel`, { token: t.key, body: {} });
      expect((await fannedOut(t)).slice(1)).toEqual([`${a.webhook_id} task.cancelled`]);

      expect((await patch({ is_active: false })).status).toBe(200);
      await call(`/v1/tasks/${await newTask(t)}/cancel`, { token: t.key, body: {} });
      expect(await fannedOut(t)).toHaveLength(2);

      expect((await patch({ is_active: true })).status).toBe(200);
      const b = await hook(t, "b", ["*"]);
      await call(`/v1/tasks/${await newTask(t)}/cancel`, { token: t.key, body: {} });
      expect((await fannedOut(t)).slice(2).sort()).toEqual(
        [`${a.webhook_id} task.cancelled`, `${b.webhook_id} task.created`, `${b.webhook_id} task.queued`, `${b.webhook_id} task.cancelled`].sort(),
      );

      expect((await call(`/v1/webhooks/${b.webhook_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
      await call(`/v1/tasks/${await newTask(t)}/cancel`, { token: t.key, body: {} });
      expect((await fannedOut(t)).slice(6)).toEqual([`${a.webhook_id} task.cancelled`]);
    } finally {
      endpoints.restore();
    }
  });

  it("reads the endpoints once for a batch of many events, not once an event", async () => {
    const t = await tenant();
    expect((await call("/v1/processors/ws_many", { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
    const reads = await runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
      const counted = { reads: 0 };
      const sql = state.storage.sql;
      const exec = sql.exec.bind(sql);
      sql.exec = ((text: string, ...params: SqlStorageValue[]) => {
        if (/FROM webhooks\b/.test(text)) counted.reads++;
        return exec(text, ...params);
      }) as typeof sql.exec;
      return counted;
    });
    // 100 tasks: 200 events (created, queued).
    const res = await call("/v1/tasks/batch", { token: t.key, body: { tasks: Array.from({ length: 100 }, () => ({ task_type: "ws_many" })) } });
    expect(res.status).toBe(201);
    expect((await query(t, "SELECT 1 FROM events")).length).toBeGreaterThanOrEqual(200);
    expect(reads.reads).toBeLessThanOrEqual(1);
  });
});

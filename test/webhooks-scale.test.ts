import { afterEach, describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import { MAX_DELIVERY_ATTEMPTS } from "../src/webhooks/schedule";
import { fakeEndpoints, seeded } from "./fake-endpoint";
import { call, createTask, tenant, waitForStatus } from "./helpers";
import { query } from "./inspect";
import { deliveries, drive, hook } from "./webhook-driver";

// Moved from test/webhooks.test.ts: at about 9 s it is most of that file's time, so it runs in
// the "scale" project, where its cost shows.

registerHandler({ type: "wh_done", run: async () => ({ ok: true }) });

let endpoints: ReturnType<typeof fakeEndpoints> | null = null;
afterEach(() => {
  endpoints?.restore();
  endpoints = null;
});

describe("deliveries at scale", () => {
  it("delivers 1 000 events to an endpoint that fails half the attempts at random: none lost, the log consistent", async () => {
    const t = await tenant({ max_concurrent_tasks: 1000 });
    const random = seeded(20261129);
    const attempts = new Map<string, number[]>();
    endpoints = fakeEndpoints((endpoint, body) => {
      if (endpoint !== "half") return new Response("ok");
      const status = random() < 0.5 ? 500 : 200;
      attempts.set(body.id, [...(attempts.get(body.id) ?? []), status]);
      return new Response(null, { status });
    });
    const { webhook_id } = await hook(t, "half", ["task.created", "task.queued", "task.processing", "task.completed"]);
    const tasks = [];
    for (let i = 0; i < 250; i += 50) tasks.push(...(await Promise.all(Array.from({ length: 50 }, () => createTask(t, { task_type: "wh_done" })))));
    for (const task of tasks) await waitForStatus(t, task.task_id, "completed");
    await drive(t);

    const rows = await deliveries(t);
    const events = await query<{ event_id: string }>(t, "SELECT event_id FROM events WHERE event_type IN ('task.created','task.queued','task.processing','task.completed')");
    expect(events).toHaveLength(1000);
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((d) => d.event_id))).toEqual(new Set(events.map((e) => e.event_id)));
    for (const d of rows) {
      const seen = attempts.get(d.event_id) ?? [];
      // The log says exactly what the endpoint saw.
      expect(d.attempts).toBe(seen.length);
      if (d.status === "succeeded") expect(seen.at(-1)).toBe(200);
      else expect(seen).toEqual(new Array(MAX_DELIVERY_ATTEMPTS).fill(500));
      expect(seen.slice(0, -1).every((s) => s === 500)).toBe(true);
    }
    // The few whose eight attempts all failed are delivered by a redelivery.
    const exhausted = rows.filter((d) => d.status === "failed");
    for (const d of exhausted) {
      const res = await call(`/v1/webhooks/${webhook_id}/deliveries/${d.delivery_id}/redeliver`, { token: t.key, method: "POST" });
      expect(res.status).toBe(202);
    }
    endpoints.restore();
    endpoints = fakeEndpoints((_, body) => {
      attempts.set(body.id, [...(attempts.get(body.id) ?? []), 200]);
      return new Response("ok");
    });
    await drive(t);
    for (const e of events) expect(attempts.get(e.event_id)).toContain(200);
  }, 120_000);
});

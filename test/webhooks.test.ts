import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { TestNamespaceDO } from "./namespace-do";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import { MAX_DELIVERY_ATTEMPTS, RETRY_DELAYS_MS, retryAfterMs } from "../src/webhooks/schedule";
import { call, createTask, eventually, sleep, stub, tenant, waitForStatus } from "./helpers";
import { fakeEndpoints, HOOK_BASE } from "./fake-endpoint";
import { deliveries, drive, hook, now, settle, settledDeliveries } from "./webhook-driver";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { advance, query } from "./inspect";

registerHandler({ type: "wh_done", run: async () => ({ ok: true }) });

let endpoints: ReturnType<typeof fakeEndpoints> | null = null;
let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => {
  endpoints?.restore();
  processor?.restore();
  endpoints = null;
  processor = null;
});


describe("webhook endpoints", () => {
  it("creates an endpoint with a secret shown once, lists, updates and deletes it", async () => {
    const t = await tenant();
    const created = await hook(t, "crud", ["task.completed", "task.failed"]);
    expect(created).toMatchObject({ url: `${HOOK_BASE}crud`, event_types: ["task.completed", "task.failed"], is_active: true, description: null });
    expect(created.webhook_id).toMatch(/^wh_[a-z0-9]{20}$/);
    const key = atob(created.secret.slice("whsec_".length));
    expect(key.length).toBe(32);
    const list = await call("/v1/webhooks", { token: t.key });
    expect(list.body.results).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain("whsec_");
    const patched = await call(`/v1/webhooks/${created.webhook_id}`, { token: t.key, method: "PATCH", body: { description: "ops", event_types: ["*"] } });
    expect(patched.body).toMatchObject({ description: "ops", event_types: ["*"] });
    expect(patched.body).not.toHaveProperty("secret");
    expect((await call(`/v1/webhooks/${created.webhook_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    expect((await call(`/v1/webhooks/${created.webhook_id}`, { token: t.key })).status).toBe(404);
    const other = await tenant();
    const mine = await hook(t, "mine");
    expect((await call(`/v1/webhooks/${mine.webhook_id}`, { token: other.key })).status).toBe(404);
  });

  it("refuses bad input: unknown event types, a lone-star mix, a bad url, unknown fields", async () => {
    const t = await tenant();
    for (const body of [
      { url: `${HOOK_BASE}x`, event_types: ["task.exploded"] },
      { url: `${HOOK_BASE}x`, event_types: ["*", "task.created"] },
      { url: `${HOOK_BASE}x`, event_types: [] },
      { url: "ftp://hooks.test/x", event_types: ["*"] },
      { url: `${HOOK_BASE}x`, event_types: ["*"], secret: "mine" },
      { url: `${HOOK_BASE}x` },
    ]) {
      const res = await call("/v1/webhooks", { token: t.key, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
  });
});

describe("deliveries", () => {
  it("signs every delivery so that the standardwebhooks package verifies it, and nothing tampered", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const { secret } = await hook(t, "signed");
    const task = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, task.task_id, "completed");
    const got = await eventually(async () => {
      const r = endpoints?.at("signed").filter((x) => x.body.data.task?.task_id === task.task_id) ?? [];
      return r.length >= 4 ? r : undefined;
    });
    expect(got.map((r) => r.body.type).sort()).toEqual(["task.completed", "task.created", "task.processing", "task.queued"]);
    const verifier = new Webhook(secret.slice("whsec_".length));
    for (const r of got) {
      const headers = Object.fromEntries(r.headers);
      expect(headers["webhook-id"]).toBe(r.body.id);
      const verified = verifier.verify(r.raw, headers) as { namespace_id: string; data: { task: { task_id: string } } };
      expect(verified.namespace_id).toBe(t.namespaceId);
      expect(verified.data.task.task_id).toBe(task.task_id);
      expect(() => verifier.verify(r.raw.replace("task.", "tosk."), headers)).toThrow();
      const old = String(Number(headers["webhook-timestamp"]) - 600);
      expect(() => verifier.verify(r.raw, { ...headers, "webhook-timestamp": old })).toThrow();
    }
    expect(() => new Webhook(btoa("x".repeat(32))).verify(got[0]!.raw, Object.fromEntries(got[0]!.headers))).toThrow();
  });

  it("delivers only the subscribed event types", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    await hook(t, "only-done", ["task.completed"]);
    const task = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, task.task_id, "completed");
    await eventually(async () => (endpoints?.at("only-done").length ? true : undefined));
    await settle(t);
    expect(endpoints.at("only-done").map((r) => r.body.type)).toEqual(["task.completed"]);
  });

  it("retries on the schedule with jitter, keeps the webhook-id, refreshes the timestamp, and gives up after 8 attempts", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints(() => new Response("down", { status: 500 }));
    const { webhook_id } = await hook(t, "down", ["task.created"]);
    const start = await now(t);
    await createTask(t, { task_type: "wh_done" });
    const attemptTimes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const [d] = await settledDeliveries(t);
      if (!d) throw new Error("no delivery");
      if (attemptTimes.length < d.attempts) attemptTimes.push(await now(t));
      if (d.status !== "pending") break;
      await advance(t, (d.next_attempt_at ?? 0) - (await now(t)) + 1);
    }
    const [final] = await deliveries(t);
    expect(final).toMatchObject({ status: "failed", attempts: MAX_DELIVERY_ATTEMPTS, last_status_code: 500 });
    const got = endpoints.at("down");
    expect(got).toHaveLength(MAX_DELIVERY_ATTEMPTS);
    const gaps = attemptTimes.slice(1).map((at, i) => at - (attemptTimes[i] ?? 0));
    gaps.forEach((gap, i) => {
      const base = RETRY_DELAYS_MS[i] ?? 0;
      expect(gap, `wait before attempt ${i + 2}`).toBeGreaterThanOrEqual(base * 0.8);
      expect(gap).toBeLessThanOrEqual(base * 1.2 + 1000);
    });
    expect(attemptTimes[0]! - start).toBeLessThan(5000);
    expect(new Set(got.map((r) => r.headers.get("webhook-id"))).size).toBe(1);
    // The timestamp is the wall clock of each attempt (this test moves only the service's clock).
    for (const r of got) expect(Math.abs(Number(r.headers.get("webhook-timestamp")) - r.receivedAt / 1000)).toBeLessThanOrEqual(2);

    // The delivery log in D1 agrees, after a flush.
    await call("/v1/tasks?limit=1", { token: t.key });
    const log = await call(`/v1/webhooks/${webhook_id}/deliveries`, { token: t.key });
    expect(log.body.results).toHaveLength(1);
    expect(log.body.results[0]).toMatchObject({ status: "failed", attempts: 8, last_status_code: 500, next_attempt_at: null, event_type: "task.created" });
  });

  it("disables an endpoint that answers 410, and fails its pending deliveries", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints(() => new Response("gone", { status: 410 }));
    const { webhook_id } = await hook(t, "gone");
    const task = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, task.task_id, "completed");
    await eventually(async () => ((await call(`/v1/webhooks/${webhook_id}`, { token: t.key })).body.is_active === false ? true : undefined));
    await settle(t);
    const hookNow = (await call(`/v1/webhooks/${webhook_id}`, { token: t.key })).body;
    expect(hookNow.disabled_reason).toContain("410");
    const rows = await deliveries(t);
    expect(rows.every((d) => d.status === "failed")).toBe(true);
    const before = endpoints.at("gone").length;
    const next = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, next.task_id, "completed");
    await sleep(300);
    expect(endpoints.at("gone").length).toBe(before);
    // Turning it back on resumes deliveries.
    const on = await call(`/v1/webhooks/${webhook_id}`, { token: t.key, method: "PATCH", body: { is_active: true } });
    expect(on.body).toMatchObject({ is_active: true, disabled_reason: null });
  });

  it("waits as long as Retry-After asks on 429 and 503, within the schedule's bounds", async () => {
    expect(retryAfterMs("120", 0)).toBe(120_000);
    expect(retryAfterMs("1", 0)).toBe(5_000);
    expect(retryAfterMs("999999", 0)).toBe(36_000_000);
    expect(retryAfterMs(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(retryAfterMs("soon", 0)).toBeNull();

    const t = await tenant();
    let calls = 0;
    endpoints = fakeEndpoints(() => (++calls === 1 ? new Response("slow down", { status: 429, headers: { "Retry-After": "120" } }) : new Response("ok")));
    await hook(t, "busy", ["task.created"]);
    await createTask(t, { task_type: "wh_done" });
    await eventually(async () => (calls === 1 ? true : undefined));
    await settle(t);
    const [d] = await deliveries(t);
    const wait = (d?.next_attempt_at ?? 0) - (await now(t));
    expect(wait).toBeGreaterThan(110_000);
    expect(wait).toBeLessThanOrEqual(120_000);
    await advance(t, wait + 1);
    await settle(t);
    expect((await deliveries(t))[0]).toMatchObject({ status: "succeeded", attempts: 2 });
  });

  it("disables an endpoint that has failed every attempt for 5 days", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints(() => new Response("down", { status: 500 }));
    const { webhook_id } = await hook(t, "dead", ["task.created"]);
    await createTask(t, { task_type: "wh_done" });
    await eventually(async () => (endpoints?.at("dead").length === 1 ? true : undefined));
    await settle(t);
    // It has been failing for almost 5 days: the next failure crosses the line.
    const clock = await now(t);
    await query(t, "UPDATE webhooks SET failing_since = ? WHERE webhook_id = ?", clock - 5 * 86400_000 + 10_000, webhook_id);
    await advance(t, 10_000);
    await settle(t);
    const after = (await call(`/v1/webhooks/${webhook_id}`, { token: t.key })).body;
    expect(after).toMatchObject({ is_active: false, disabled_reason: "every attempt failed for 5 days" });
    // A success resets the count.
    const t2 = await tenant();
    let fail = true;
    endpoints.restore();
    endpoints = fakeEndpoints(() => (fail ? new Response("down", { status: 500 }) : new Response("ok")));
    const second = await hook(t2, "recovers", ["task.created"]);
    await createTask(t2, { task_type: "wh_done" });
    await eventually(async () => (endpoints?.at("recovers").length === 1 ? true : undefined));
    await settle(t2);
    fail = false;
    await drive(t2);
    expect((await query<{ failing_since: number | null }>(t2, "SELECT failing_since FROM webhooks WHERE webhook_id = ?", second.webhook_id))[0]?.failing_since).toBeNull();
  });

  it("loses no delivery across a Durable Object restart mid-schedule", async () => {
    const t = await tenant();
    let up = false;
    endpoints = fakeEndpoints(() => (up ? new Response("ok") : new Response("down", { status: 503 })));
    await hook(t, "restart");
    const task = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, task.task_id, "completed");
    await eventually(async () => ((await deliveries(t)).filter((d) => d.attempts >= 1).length === 4 ? true : undefined));
    await settle(t);
    await evictDurableObject(stub(t));
    up = true;
    await drive(t);
    const rows = await deliveries(t);
    expect(rows).toHaveLength(4);
    expect(rows.map((d) => d.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    expect(rows.every((d) => d.attempts >= 2)).toBe(true);
    const delivered = new Set(endpoints.at("restart").filter((r) => r.status === 200).map((r) => r.body.id));
    expect(delivered.size).toBe(4);
  });

});

describe("secrets, tests, redelivery, progress, isolation", () => {
  it("signs with both the new and the old secret for a day after a rotation", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const { webhook_id, secret: old } = await hook(t, "rotate", ["webhook.test"]);
    const rotated = await call(`/v1/webhooks/${webhook_id}/rotate-secret`, { token: t.key, method: "POST" });
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.secret as string;
    expect(fresh).not.toBe(old);
    const ping = await call(`/v1/webhooks/${webhook_id}/test`, { token: t.key, method: "POST" });
    expect(ping.status).toBe(202);
    const got = await eventually(async () => endpoints?.at("rotate")[0]);
    expect(got.body.type).toBe("webhook.test");
    const headers = Object.fromEntries(got.headers);
    expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    new Webhook(fresh.slice(6)).verify(got.raw, headers);
    new Webhook(old.slice(6)).verify(got.raw, headers);
    // A day later only the new secret signs.
    await advance(t, 24 * 3600_000 + 1000);
    await call(`/v1/webhooks/${webhook_id}/test`, { token: t.key, method: "POST" });
    await runDurableObjectAlarm(stub(t));
    const later = await eventually(async () => endpoints?.at("rotate")[1]);
    const laterHeaders = Object.fromEntries(later.headers);
    expect(laterHeaders["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(() => new Webhook(old.slice(6)).verify(later.raw, { ...laterHeaders, "webhook-timestamp": String(Math.floor(Date.now() / 1000)) })).toThrow();
  });

  it("redelivers an event with the same webhook-id as a new delivery", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const { webhook_id } = await hook(t, "again", ["task.completed"]);
    const task = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, task.task_id, "completed");
    const first = await eventually(async () => endpoints?.at("again")[0]);
    await settle(t);
    const [d] = await deliveries(t);
    const again = await call(`/v1/webhooks/${webhook_id}/deliveries/${d?.delivery_id}/redeliver`, { token: t.key, method: "POST" });
    expect(again.status).toBe(202);
    expect(again.body.delivery_id).not.toBe(d?.delivery_id);
    const second = await eventually(async () => endpoints?.at("again")[1]);
    expect(second.headers.get("webhook-id")).toBe(first.headers.get("webhook-id"));
    expect((await call(`/v1/webhooks/${webhook_id}/deliveries/dlv_nothere/redeliver`, { token: t.key, method: "POST" })).status).toBe(404);
  });

  it("sends task.progress at most once a second a task, the latest progress winning", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    processor = fakeProcessor();
    await call("/v1/processors/wh_remote", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    await hook(t, "progress", ["task.progress"]);
    const task = await createTask(t, { task_type: "wh_remote" });
    const { token } = (await eventually(async () => processor?.last(task.task_id))).body.callback;
    for (let percent = 10; percent <= 50; percent += 10) {
      expect((await call(`/v1/tasks/${task.task_id}/callback/progress`, { token, body: { percent } })).status).toBe(200);
    }
    await advance(t, 1100);
    await settle(t);
    await eventually(async () => ((endpoints?.at("progress").length ?? 0) >= 2 ? true : undefined));
    const percents = endpoints.at("progress").map((r) => r.body.data.task?.progress.percent);
    expect(percents).toEqual([10, 50]);
    const times = (await query<{ created_at: number }>(t, "SELECT created_at FROM events WHERE event_type = 'task.progress' ORDER BY seq")).map((e) => e.created_at);
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(1000);
  });

  it("a hanging endpoint slows neither the task API nor the other endpoints", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints((endpoint, _body, init) =>
      endpoint === "hang"
        ? new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(new Error("aborted"))))
        : new Response("ok"),
    );
    await hook(t, "hang", ["task.created"]);
    await hook(t, "fine", ["task.created"]);
    const first = await createTask(t, { task_type: "wh_done" });
    await eventually(async () => (endpoints?.received.some((r) => r.endpoint === "fine" && r.body.data.task?.task_id === first.task_id) ? true : undefined), 3000);
    // While the first attempt to "hang" is still out, everything else goes on.
    const second = await createTask(t, { task_type: "wh_done" });
    await waitForStatus(t, second.task_id, "completed");
    await eventually(async () => (endpoints?.received.some((r) => r.endpoint === "fine" && r.body.data.task?.task_id === second.task_id) ? true : undefined), 3000);
    expect(await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.deliveriesInFlight())).toBeGreaterThanOrEqual(1);
  });

  it("keeps delivery records in D1", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const { webhook_id } = await hook(t, "records", ["task.created"]);
    await createTask(t, { task_type: "wh_done" });
    await eventually(async () => endpoints?.at("records")[0]);
    await settle(t);
    const page = await call(`/v1/webhooks/${webhook_id}/deliveries`, { token: t.key });
    expect(page.status).toBe(200);
    expect(page.body.results[0]).toMatchObject({ webhook_id, status: "succeeded", attempts: 1, last_status_code: 200, event_type: "task.created" });
    const row = await env.DB.prepare("SELECT status FROM webhook_deliveries WHERE webhook_id = ?").bind(webhook_id).first<{ status: string }>();
    expect(row?.status).toBe("succeeded");
  });
});

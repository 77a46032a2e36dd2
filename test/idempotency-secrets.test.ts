import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import { call, tenant, type Tenant } from "./helpers";

registerHandler({ type: "idem_done", run: async () => ({}) });

interface CreatedWebhook {
  webhook_id: string;
  secret: string;
}

const storedBody = async (t: Tenant, key: string) =>
  (await env.DB.prepare("SELECT response_body FROM idempotency_keys WHERE namespace_id = ? AND idempotency_key = ?").bind(t.namespaceId, key).first<{ response_body: string }>())?.response_body;

const createHook = (t: Tenant, key: string) =>
  call<CreatedWebhook>("/v1/webhooks", { token: t.key, body: { url: "https://hooks.example.com/in", event_types: ["object.created"] }, headers: { "Idempotency-Key": key } });

const webhookCount = async (t: Tenant) => (await call<{ results: unknown[] }>("/v1/webhooks", { token: t.key })).body.results.length;

describe("Idempotency-Key responses that carry a secret", () => {
  it("are kept in D1 sealed, never in plain, and a replay still returns the same body with the secret", async () => {
    const t = await tenant();
    const first = await createHook(t, "hook-1");
    expect(first.status).toBe(201);
    expect(first.body.secret).toMatch(/^whsec_/);

    const stored = await storedBody(t, "hook-1");
    expect(stored).toBeTruthy();
    expect(stored).not.toContain("whsec_");
    expect(stored).not.toContain(first.body.secret.slice("whsec_".length));
    expect(stored).not.toContain(first.body.webhook_id);

    const replay = await createHook(t, "hook-1");
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body).toEqual(first.body);
    expect(await webhookCount(t)).toBe(1);
  });

  it("seal every stored response, each under its own key: a task's too", async () => {
    const t = await tenant();
    const a = await createHook(t, "hook-a");
    const b = await createHook(t, "hook-b");
    expect(a.body.secret).not.toBe(b.body.secret);
    const [sa, sb] = [await storedBody(t, "hook-a"), await storedBody(t, "hook-b")];
    expect(sa).toMatch(/^sealed:v1:/);
    expect(sb).toMatch(/^sealed:v1:/);
    // A sealed body moved under another key does not open: the key is bound to it.
    await env.DB.prepare("UPDATE idempotency_keys SET response_body = ? WHERE namespace_id = ? AND idempotency_key = 'hook-b'").bind(sa, t.namespaceId).run();
    const moved = await createHook(t, "hook-b");
    expect(moved.status).toBe(422);
    expect(moved.body).toMatchObject({ success: false, error: { type: "validation_error", details: { header: "Idempotency-Key" } } });
    expect(JSON.stringify(moved.body)).not.toContain("whsec_");
    expect(await webhookCount(t)).toBe(2);

    const task = await call("/v1/tasks", { token: t.key, body: { task_type: "idem_done", inputs: { card: "4111" } }, headers: { "Idempotency-Key": "task-1" } });
    expect(task.status).toBe(201);
    expect(await storedBody(t, "task-1")).toMatch(/^sealed:v1:/);
    expect(await storedBody(t, "task-1")).not.toContain("4111");
    const again = await call("/v1/tasks", { token: t.key, body: { task_type: "idem_done", inputs: { card: "4111" } }, headers: { "Idempotency-Key": "task-1" } });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(task.body);
  });

  it("refuse to replay a sealed body that was altered, creating nothing, and replay a body stored before sealing as it is", async () => {
    const t = await tenant();
    await createHook(t, "hook-t");
    const stored = (await storedBody(t, "hook-t")) ?? "";
    const flipped = `${stored.slice(0, -4)}${stored.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`;
    await env.DB.prepare("UPDATE idempotency_keys SET response_body = ? WHERE namespace_id = ? AND idempotency_key = 'hook-t'").bind(flipped, t.namespaceId).run();
    const altered = await createHook(t, "hook-t");
    expect(altered.status).toBe(422);
    expect(JSON.stringify(altered.body)).toContain("can no longer be replayed");
    expect(await webhookCount(t)).toBe(1);

    // The status is bound too: a sealed 201 relabelled 200 does not open.
    await createHook(t, "hook-s");
    await env.DB.prepare("UPDATE idempotency_keys SET response_status = 200 WHERE namespace_id = ? AND idempotency_key = 'hook-s'").bind(t.namespaceId).run();
    expect((await createHook(t, "hook-s")).status).toBe(422);

    const legacy = JSON.stringify({ webhook_id: "wh_legacy", secret: "whsec_old" });
    await createHook(t, "hook-old");
    await env.DB.prepare("UPDATE idempotency_keys SET response_body = ? WHERE namespace_id = ? AND idempotency_key = 'hook-old'").bind(legacy, t.namespaceId).run();
    const old = await createHook(t, "hook-old");
    expect(old.status).toBe(201);
    expect(old.body).toEqual(JSON.parse(legacy));
  });
});

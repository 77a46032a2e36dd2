import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { credentialLookups } from "../src/api/auth";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import { RequestBucket, UnfinishedTasks } from "../src/namespace/limits";
import { ADMIN, call, type ApiResponse, Latch, stub, tenant, type Tenant } from "./helpers";
import { allEvents, freezeClock } from "./inspect";

registerHandler({ type: "lim_noop", run: async () => ({}) });
const latch = new Latch();
registerHandler({
  type: "lim_held",
  run: async (ctx) => {
    await latch.hold(ctx.task.task_id, ctx.signal);
    return {};
  },
});

afterEach(() => {
  vi.restoreAllMocks();
});

const statusCounts = (responses: ApiResponse[]) => {
  const counts: Record<number, number> = {};
  for (const r of responses) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
};

const setSettings = (t: Tenant, settings: Record<string, number | null>) =>
  call(`/v1/namespaces/${t.name}`, { token: ADMIN, method: "PATCH", body: { settings } });

describe("the per-namespace rate limit", () => {
  it("admits a burst of twice requests_per_second, answers the rest 429 with its headers, and creates nothing for them", async () => {
    const t = await tenant({ requests_per_second: 10 });
    await freezeClock(t);
    const responses = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => call("/v1/tasks", { token: t.key, body: { task_type: "lim_noop", inputs: { i } } })),
    );
    expect(statusCounts(responses)).toEqual({ 201: 20, 429: 980 });
    const refused = responses.find((r) => r.status === 429);
    expect(refused?.body).toMatchObject({ success: false, status: 429, error: { type: "rate_limited" } });
    expect(Number(refused?.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(refused?.headers.get("RateLimit-Limit")).toBe("20");
    expect(refused?.headers.get("RateLimit-Remaining")).toBe("0");
    expect(Number(refused?.headers.get("RateLimit-Reset"))).toBeGreaterThanOrEqual(1);
    const admitted = responses.find((r) => r.status === 201);
    expect(admitted?.headers.get("RateLimit-Limit")).toBe("20");
    const created = (await allEvents(t)).filter((e) => e.event_type === "task.created");
    expect(created).toHaveLength(20);
  });

  it("gives 800 of a 1 000-request burst at the default 100 a second a 429", async () => {
    const t = await tenant({ requests_per_second: 100 });
    await freezeClock(t);
    const responses = await Promise.all(Array.from({ length: 1000 }, () => call("/v1/tasks/stats", { token: t.key })));
    expect(statusCounts(responses)).toEqual({ 200: 200, 429: 800 });
  });

  it("admits every request of a concurrent burst that fits the bucket", async () => {
    // Cold requests that each asked for a growing grant once drained the bucket into this isolate
    // and then refused the rest, though the isolate held thousands of tokens.
    const t = await tenant({ requests_per_second: 10_000 });
    // Once the key is in the isolate's cache, the burst reaches the rate limit all at once.
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(200);
    await freezeClock(t);
    const responses = await Promise.all(Array.from({ length: 100 }, () => call("/v1/tasks/stats", { token: t.key })));
    expect(statusCounts(responses)).toEqual({ 200: 100 });
    const remaining = Math.min(...responses.map((r) => Number(r.headers.get("RateLimit-Remaining"))));
    expect(remaining).toBeGreaterThanOrEqual(20_000 - 100 - 1000);
  });

  it("refills at requests_per_second, and never limits health, docs or the admin API", async () => {
    const t = await tenant({ requests_per_second: 10 });
    await freezeClock(t);
    await Promise.all(Array.from({ length: 30 }, () => call("/v1/tasks/stats", { token: t.key })));
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(429);
    expect((await call("/health")).status).toBe(200);
    expect((await call("/openapi.json")).status).toBe(200);
    expect((await call(`/v1/namespaces/${t.name}`, { token: ADMIN })).status).toBe(200);
    // Half a second later the bucket holds five tokens, once this isolate stops refusing on its own.
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      const at = instance.clock.now();
      vi.spyOn(instance.clock, "now").mockReturnValue(at + 500);
    });
    const first = await (async () => {
      for (;;) {
        const res = await call("/v1/tasks/stats", { token: t.key });
        if (res.status === 200) return res;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    expect(first.status).toBe(200);
    const rest = await Promise.all(Array.from({ length: 10 }, () => call("/v1/tasks/stats", { token: t.key })));
    expect(statusCounts(rest)).toEqual({ 200: 4, 429: 6 });
  });

  it("counts processor callbacks against their namespace", async () => {
    const t = await tenant({ requests_per_second: 1 });
    const token = await attemptToken(t, "tsk_limitscallback");
    await freezeClock(t);
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(200);
    // The token is the attempt's; the attempt has ended, so the report is a conflict, but it counts.
    expect((await call("/v1/tasks/tsk_limitscallback/callback/progress", { token, body: {} })).status).toBe(409);
    const limited = await call("/v1/tasks/tsk_limitscallback/callback/progress", { token, body: {} });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).not.toBeNull();
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(429);
  });

  it("does not charge a namespace for callbacks with a forged token", async () => {
    const t = await tenant({ requests_per_second: 1 });
    await freezeClock(t);
    const forged = `${t.namespaceId}.${"a".repeat(43)}`;
    for (let i = 0; i < 3; i++) expect((await call("/v1/tasks/tsk_x/callback/progress", { token: forged, body: {} })).status).toBe(401);
    expect((await call("/v1/tasks/stats", { token: t.key })).status).toBe(200);
  });
});

/** A callback token of an ended attempt of `taskId`, written straight into the namespace's object. */
async function attemptToken(t: Tenant, taskId: string): Promise<string> {
  const token = `${t.namespaceId}.${"c".repeat(43)}`;
  const hash = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)))].map((b) => b.toString(16).padStart(2, "0")).join("");
  await runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
    state.storage.sql.exec("INSERT INTO attempts (task_id, attempt, token_hash, lease_seconds, started_at, final_status) VALUES (?, 1, ?, 60, 0, 'completed')", taskId, hash);
  });
  return token;
}

describe("unknown credentials", () => {
  it("are limited per client address before any D1 lookup", async () => {
    const address = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const before = credentialLookups.count;
    const responses: ApiResponse[] = [];
    for (let i = 0; i < 250; i++) {
      const key = `sk_${crypto.randomUUID().replaceAll("-", "")}`;
      responses.push(await call("/v1/tasks/stats", { token: key, headers: { "CF-Connecting-IP": address } }));
    }
    const counts = statusCounts(responses);
    expect(counts[429]).toBeGreaterThanOrEqual(50);
    expect((counts[401] ?? 0) + (counts[429] ?? 0)).toBe(250);
    // Each 401 cost one lookup; each 429 none.
    expect(credentialLookups.count - before).toBe(counts[401]);
    const refused = responses.find((r) => r.status === 429);
    expect(refused?.body).toMatchObject({ error: { type: "rate_limited" } });
    expect(Number(refused?.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // Another address is not affected.
    expect((await call("/v1/tasks/stats", { token: "sk_unknown", headers: { "CF-Connecting-IP": "203.0.113.9" } })).status).toBe(401);
  });

  it("guessed callback tokens of a real namespace are limited per address before they reach its object", async () => {
    const t = await tenant();
    const address = `203.0.113.${Math.floor(Math.random() * 250) + 1}`;
    // On the prototype: RPC calls only methods of the class, not an instance's own properties.
    const asked = await runInDurableObject(stub(t), (instance: NamespaceDO) => vi.spyOn(Object.getPrototypeOf(instance) as NamespaceDO, "isCallbackToken"));
    const statuses: number[] = [];
    for (let i = 0; i < 250; i++) {
      const guess = `${t.namespaceId}.${crypto.randomUUID().replaceAll("-", "").padEnd(43, "x")}`;
      statuses.push((await call("/v1/tasks/tsk_x/callback/progress", { token: guess, body: {}, headers: { "CF-Connecting-IP": address } })).status);
    }
    const refused = statuses.filter((s) => s === 429).length;
    expect(refused).toBeGreaterThanOrEqual(50);
    // Each 401 asked the object once; of the 429s only the guess that crossed the limit did (one
    // per window of the limiter; the guesses span at most two).
    const unauthorized = statuses.filter((s) => s === 401).length;
    expect(asked.mock.calls.length).toBeGreaterThanOrEqual(unauthorized + 1);
    expect(asked.mock.calls.length).toBeLessThanOrEqual(unauthorized + 2);
  });

  it("guessed callback tokens of unknown namespaces are limited per address too", async () => {
    const address = `192.0.2.${Math.floor(Math.random() * 250) + 1}`;
    const before = credentialLookups.count;
    const statuses: number[] = [];
    for (let i = 0; i < 250; i++) {
      const ns = `ns_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
      const res = await call("/v1/tasks/tsk_x/callback/progress", { token: `${ns}.${"b".repeat(43)}`, body: {}, headers: { "CF-Connecting-IP": address } });
      statuses.push(res.status);
    }
    const refused = statuses.filter((s) => s === 429).length;
    expect(refused).toBeGreaterThanOrEqual(50);
    expect(credentialLookups.count - before).toBe(statuses.filter((s) => s === 401).length);
  });
});

const quotaError = (res: ApiResponse, quota: string, limit: number) => {
  expect(res.status, JSON.stringify(res.body)).toBe(409);
  expect(res.body).toMatchObject({ success: false, status: 409, error: { type: "conflict", details: { quota, limit } } });
};

describe("quotas", () => {
  it("max_webhooks: a create beyond it is 409 with details, and raising it allows more", async () => {
    const t = await tenant({ max_webhooks: 2 });
    const create = () => call("/v1/webhooks", { token: t.key, body: { url: "http://127.0.0.1:9/hook", event_types: ["task.completed"] } });
    expect((await create()).status).toBe(201);
    expect((await create()).status).toBe(201);
    quotaError(await create(), "max_webhooks", 2);
    expect((await call("/v1/webhooks", { token: t.key })).body.results).toHaveLength(2);
    expect((await setSettings(t, { max_webhooks: 3 })).status).toBe(200);
    expect((await create()).status).toBe(201);
  });

  it("max_processors: a new task type beyond it is 409, replacing an existing one is not", async () => {
    const t = await tenant({ max_processors: 1 });
    const put = (type: string) => call(`/v1/processors/${type}`, { token: t.key, method: "PUT", body: { url: "http://127.0.0.1:9/run" } });
    expect((await put("lim_a")).status).toBe(201);
    expect((await put("lim_a")).status).toBe(200);
    quotaError(await put("lim_b"), "max_processors", 1);
    expect((await call("/v1/processors/lim_b", { token: t.key })).status).toBe(404);
    expect((await setSettings(t, { max_processors: 2 })).status).toBe(200);
    expect((await put("lim_b")).status).toBe(201);
  });

  it("max_unfinished_tasks: a create beyond it is 409 and creates nothing; a finished task frees its place", async () => {
    const t = await tenant({ max_unfinished_tasks: 2 });
    const create = () => call("/v1/tasks", { token: t.key, body: { task_type: "lim_held" } });
    const a = await create();
    const b = await create();
    expect([a.status, b.status]).toEqual([201, 201]);
    quotaError(await create(), "max_unfinished_tasks", 2);
    expect((await allEvents(t)).filter((e) => e.event_type === "task.created")).toHaveLength(2);
    expect((await setSettings(t, { max_unfinished_tasks: 3 })).status).toBe(200);
    expect((await create()).status).toBe(201);
    quotaError(await create(), "max_unfinished_tasks", 3);
    expect((await call(`/v1/tasks/${a.body.task_id}/cancel`, { token: t.key, method: "POST" })).status).toBe(200);
    const d = await create();
    expect(d.status).toBe(201);
    for (const id of [b.body.task_id, d.body.task_id]) await call(`/v1/tasks/${id}/cancel`, { token: t.key, method: "POST" });
    for (const key of latch.entered) latch.release(key);
  });

  it("max_unfinished_tasks: an object whose tasks would pass it is refused with 409 and does not appear", async () => {
    const t = await tenant({ max_unfinished_tasks: 1 });
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "quota" } })).body;
    expect((await call("/v1/collections", { token: t.key, body: { collection_name: "quota", source_bucket_ids: [bucket.bucket_id] } })).status).toBe(201);
    const held = await call("/v1/tasks", { token: t.key, body: { task_type: "lim_held" } });
    expect(held.status).toBe(201);
    quotaError(await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key, body: { key: "a.txt", content: "hello" } }), "max_unfinished_tasks", 1);
    expect((await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key })).body.results).toHaveLength(0);
    await call(`/v1/tasks/${held.body.task_id}/cancel`, { token: t.key, method: "POST" });
    for (const key of latch.entered) latch.release(key);
  });

  it("max_collections: a create beyond it is 409, and raising it allows more", async () => {
    const t = await tenant({ max_collections: 1 });
    const bucket = (await call("/v1/buckets", { token: t.key, body: { bucket_name: "src" } })).body;
    const create = (name: string) => call("/v1/collections", { token: t.key, body: { collection_name: name, source_bucket_ids: [bucket.bucket_id] } });
    expect((await create("one")).status).toBe(201);
    quotaError(await create("two"), "max_collections", 1);
    expect((await call("/v1/collections", { token: t.key })).body.results).toHaveLength(1);
    expect((await setSettings(t, { max_collections: 2 })).status).toBe(200);
    expect((await create("two")).status).toBe(201);
  });
});

describe("limit settings", () => {
  it("take each quota up to ten times its default and refuse more with 422", async () => {
    const t = await tenant();
    const tenfold = { max_webhooks: 200, max_processors: 1000, max_open_streams: 10_000, max_unfinished_tasks: 10_000_000, max_collections: 1000 };
    const ok = await setSettings(t, { ...tenfold, requests_per_second: 10_000, max_concurrent_per_key: 1000 });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.settings).toMatchObject({ ...tenfold, requests_per_second: 10_000, max_concurrent_per_key: 1000 });
    for (const [name, value] of Object.entries(tenfold)) {
      const res = await setSettings(t, { [name]: value + 1 });
      expect(res.status, name).toBe(422);
      expect(res.body.error.type).toBe("validation_error");
    }
    const bads: Record<string, number>[] = [{ requests_per_second: 0 }, { requests_per_second: 10_001 }, { max_concurrent_per_key: 0 }, { max_concurrent_per_key: 1001 }];
    for (const bad of bads) {
      expect((await setSettings(t, bad)).status, JSON.stringify(bad)).toBe(422);
    }
    const unset = await setSettings(t, { max_concurrent_per_key: null });
    expect(unset.body.settings.max_concurrent_per_key).toBeNull();
    const created = await call("/v1/namespaces", { token: ADMIN, body: { namespace_name: `lim${Date.now().toString(36)}`, settings: { max_webhooks: 201 } } });
    expect(created.status).toBe(422);
  });
});

describe("the limits' bookkeeping", () => {
  it("counts unfinished tasks once, follows creates and finishes, and recounts at most once a second while refusing", () => {
    let truth = 3;
    let counts = 0;
    let now = 0;
    const unfinished = new UnfinishedTasks(() => (counts++, truth), () => now);
    expect(unfinished.fits(1, 5)).toBe(true);
    unfinished.added(1);
    truth++;
    expect(unfinished.fits(1, 5)).toBe(true);
    unfinished.added(1);
    truth++;
    expect(counts).toBe(1);
    expect(unfinished.fits(1, 5)).toBe(false);
    now += 1000;
    expect(unfinished.fits(1, 5)).toBe(false);
    expect(unfinished.fits(1, 5)).toBe(false);
    expect(counts).toBe(2);
    unfinished.finished();
    truth--;
    expect(unfinished.fits(1, 5)).toBe(true);
    // A drifted bound (a task finished unseen) is corrected by a recount a second later.
    unfinished.added(1);
    truth = 2;
    expect(unfinished.fits(1, 5)).toBe(false);
    now += 1000;
    expect(unfinished.fits(1, 5)).toBe(true);
    expect(counts).toBe(3);
  });

  it("holds twice the rate, refills at the rate, and says when the next token comes", () => {
    let now = 0;
    const bucket = new RequestBucket(() => now);
    expect(bucket.take(25, 10)).toMatchObject({ granted: 20, limit: 20, remaining: 0, nextTokenMs: 100, fullMs: 2000 });
    now += 250;
    expect(bucket.take(5, 10)).toMatchObject({ granted: 2, remaining: 0, nextTokenMs: 50 });
    now += 10_000;
    expect(bucket.take(1, 10)).toMatchObject({ granted: 1, remaining: 19, nextTokenMs: 0, fullMs: 100 });
  });
});

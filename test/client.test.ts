import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import {
  ApiError,
  createClient,
  type FetchLike,
  NetworkError,
  type Task,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  verifyWebhook,
  WebhookVerificationError,
} from "../src/client";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import { call, eventually, getTask, ORIGIN, sleep, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { fakeEndpoints, HOOK_BASE } from "./fake-endpoint";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { taskEvents } from "./inspect";

registerHandler({ type: "cl_done", run: async (ctx) => ({ echo: ctx.task.inputs }) });
registerHandler({
  type: "cl_steps",
  run: async (ctx) => {
    for (let step = 1; step <= 4; step++) {
      await sleep(40);
      await ctx.progress({ percent: step * 25, message: `step ${step}`, processed: step, total: 4 });
      await ctx.log(`did step ${step}`);
    }
    return { steps: 4 };
  },
});
/** Held until a test releases its key; the heartbeat learns of a cancel (it throws TaskEnded). */
const entered = new Set<string>();
const released = new Set<string>();
registerHandler({
  type: "cl_held",
  run: async (ctx) => {
    const key = String(ctx.task.inputs.key);
    await ctx.progress({ percent: 10, message: "holding" });
    entered.add(key);
    while (!released.has(key)) {
      await sleep(100);
      await ctx.progress({ percent: 10, message: "holding" });
    }
    await ctx.progress({ percent: 90 });
    return { released: true };
  },
});
registerHandler({
  type: "cl_fatal",
  run: async (ctx) => {
    await ctx.progress({ percent: 30 });
    throw new TaskFailure("bad_input", "this input can never work", false);
  },
});

/** The Worker's own fetch handler, as the client's fetch. */
const service: FetchLike = (input, init) => exports.default.fetch(new Request(input, init));

const clientFor = (t: Tenant, fetch: FetchLike = service, extra: { retries?: number } = {}) =>
  createClient({ baseUrl: ORIGIN, apiKey: t.key, fetch, retryBaseDelayMs: 5, retryMaxDelayMs: 50, ...extra });

/** Counts requests by path suffix (method and path) and lets a test intercept them. */
function recording(intercept?: (request: Request, n: number) => Promise<Response | undefined> | Response | undefined) {
  const requests: Request[] = [];
  const fetch: FetchLike = async (input, init) => {
    const request = new Request(input, init);
    requests.push(request.clone());
    const answer = intercept ? await intercept(request, requests.length) : undefined;
    return answer ?? service(request);
  };
  return { fetch, requests };
}

let endpoints: ReturnType<typeof fakeEndpoints> | null = null;
let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => {
  endpoints?.restore();
  processor?.restore();
  endpoints = null;
  processor = null;
});

describe("waitForTask", () => {
  it("resolves with the completed task and reports progress on the way (task.progress is at most one a second)", async () => {
    const t = await tenant();
    const { fetch, requests } = recording();
    const client = clientFor(t, fetch);
    const created = await client.createTask({ task_type: "cl_steps" });
    const seen: Task[] = [];
    const done = await client.waitForTask(created.task_id, { timeoutMs: 15_000, onProgress: (task) => seen.push(task) });
    expect(done.status).toBe("completed");
    expect(done.outputs).toEqual({ steps: 4 });
    const percents = seen.map((s) => s.progress.percent).filter((p) => p !== null);
    // The first step's report is an event at once; later ones within that second are coalesced.
    expect(percents).toContain(25);
    // Never backwards, even though the stream replays the task's history from its start.
    expect(percents).toEqual([...percents].sort((a, b) => (a ?? 0) - (b ?? 0)));
    expect(seen.every((s) => s.status !== "completed")).toBe(true);
    // It followed the stream: one connection, no polling.
    const urls = requests.map((r) => new URL(r.url));
    expect(urls.filter((u) => u.pathname.endsWith("/events"))).toHaveLength(1);
    expect(urls.some((u) => u.searchParams.has("wait"))).toBe(false);
  });

  it("keeps following across a Durable Object restart, reconnecting with Last-Event-ID", async () => {
    const t = await tenant();
    // An external processor's task: its callbacks reach the restarted object through the API, as
    // a built-in handler's reports through a stale stub would not.
    processor = fakeProcessor();
    expect((await call("/v1/processors/cl_remote", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } })).status).toBe(201);
    const { fetch, requests } = recording();
    const client = clientFor(t, fetch);
    const created = await client.createTask({ task_type: "cl_remote" });
    const dispatch = await eventually(async () => processor?.last(created.task_id), 10_000, "a dispatch");
    const seen: Task[] = [];
    const waiting = client.waitForTask(created.task_id, { timeoutMs: 20_000, onProgress: (task) => seen.push(task) }).catch((e: unknown) => e);
    const streams = () => requests.filter((r) => new URL(r.url).pathname.endsWith("/events"));
    const { url, token } = dispatch.body.callback;
    const report = (body: Record<string, unknown>) => call(`${new URL(url).pathname}/progress`, { token, body });
    // Once this progress arrives, the stream is open and delivering.
    expect((await report({ percent: 20, message: "before the restart" })).status).toBe(200);
    await eventually(async () => (seen.some((s) => s.progress.message === "before the restart") ? true : undefined));
    expect(streams()).toHaveLength(1);
    // The object restarts (state.abort, as the platform may do at any time): the open stream breaks.
    await runInDurableObject(stub(t), (_instance, state) => state.abort("restart")).catch(() => undefined);
    expect((await report({ percent: 60, message: "after the restart" })).status).toBe(200);
    await eventually(async () => (streams().length >= 2 ? true : undefined), 10_000, "a reconnection");
    expect((await call(`${new URL(url).pathname}/complete`, { token, body: { outputs: { remote: true } } })).status).toBe(200);
    const done = (await waiting) as Task;
    expect(done.outputs).toEqual({ remote: true });
    expect(done.progress.message).toBe("after the restart");
    // The end came through the reopened stream, not by polling.
    expect(requests.some((r) => new URL(r.url).searchParams.has("wait"))).toBe(false);
    expect(streams()[0]?.headers.get("Last-Event-ID")).toBe("0");
    expect(Number(streams()[1]?.headers.get("Last-Event-ID"))).toBeGreaterThan(0);
  });

  it("times out with TaskTimeoutError when the task outlives timeoutMs, and leaves the task running", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const created = await client.createTask({ task_type: "cl_held", inputs: { key: "timeout" } });
    await eventually(async () => (entered.has("timeout") ? true : undefined));
    const started = Date.now();
    const error = await client.waitForTask(created.task_id, { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskTimeoutError);
    expect(Date.now() - started).toBeLessThan(5000);
    const timeout = error as TaskTimeoutError;
    expect(timeout.taskId).toBe(created.task_id);
    expect(timeout.task?.status).toBe("processing");
    // Untouched: still processing, not cancelled; it finishes once let go.
    await sleep(100);
    expect((await getTask(t, created.task_id)).status).toBe("processing");
    released.add("timeout");
    expect((await client.waitForTask(created.task_id, { timeoutMs: 10_000 })).outputs).toEqual({ released: true });
  });

  it("throws TaskFailedError carrying error.code for a failing task", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const created = await client.createTask({ task_type: "cl_fatal" });
    const error = await client.waitForTask(created.task_id, { timeoutMs: 15_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).code).toBe("bad_input");
    expect((error as TaskFailedError).task.error).toMatchObject({ code: "bad_input", message: "this input can never work", retryable: false });
    // An already failed task fails the same way at once.
    const again = await client.waitForTask(created.task_id, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect((again as TaskFailedError).code).toBe("bad_input");
  });

  it("throws TaskCancelledError when the task is cancelled while waiting", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const created = await client.createTask({ task_type: "cl_held", inputs: { key: "cancel" } });
    const waiting = client.waitForTask(created.task_id, { timeoutMs: 15_000 }).catch((e: unknown) => e);
    await eventually(async () => (entered.has("cancel") ? true : undefined));
    await sleep(100);
    expect((await client.cancelTask(created.task_id)).status).toBe("cancelled");
    const error = await waiting;
    expect(error).toBeInstanceOf(TaskCancelledError);
    expect((error as TaskCancelledError).task.status).toBe("cancelled");
  });

  it("rejects with the signal's reason when aborted, and leaves the task running", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const created = await client.createTask({ task_type: "cl_held", inputs: { key: "abort" } });
    await eventually(async () => (entered.has("abort") ? true : undefined));
    const controller = new AbortController();
    const waiting = client.waitForTask(created.task_id, { signal: controller.signal }).catch((e: unknown) => e);
    await sleep(100);
    const reason = new Error("user gave up");
    controller.abort(reason);
    expect(await waiting).toBe(reason);
    expect((await getTask(t, created.task_id)).status).toBe("processing");
    released.add("abort");
    await waitForStatus(t, created.task_id, "completed");
  });

  it("falls back to long-polling when the event stream keeps failing", async () => {
    const t = await tenant();
    const { fetch, requests } = recording((request) => {
      if (new URL(request.url).pathname.endsWith("/events")) return new Response("down", { status: 503 });
      return undefined;
    });
    const client = clientFor(t, fetch, { retries: 0 });
    const created = await client.createTask({ task_type: "cl_steps" });
    const done = await client.waitForTask(created.task_id, { timeoutMs: 15_000 });
    expect(done.status).toBe("completed");
    const paths = requests.map((r) => new URL(r.url));
    expect(paths.filter((u) => u.pathname.endsWith("/events")).length).toBeGreaterThanOrEqual(1);
    expect(paths.some((u) => u.pathname === `/v1/tasks/${created.task_id}` && u.searchParams.has("wait"))).toBe(true);
  });

  it("reopens a stream that goes silent (no event, no keep-alive), and polls when it stays silent", async () => {
    const t = await tenant();
    const silent = () =>
      new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(": connected\n\n")) }), { headers: { "Content-Type": "text/event-stream" } });
    // First connection silent, then the real stream: the iterator reopens it and misses nothing.
    let streamCalls = 0;
    const once = recording((request) => (new URL(request.url).pathname.endsWith("/events") && ++streamCalls === 1 ? silent() : undefined));
    const client = clientFor(t, once.fetch);
    const created = await client.createTask({ task_type: "cl_steps" });
    const events = [];
    for await (const event of client.events(created.task_id, { lastEventId: "0", idleTimeoutMs: 300 })) events.push(event);
    expect(streamCalls).toBe(2);
    expect(events.map((e) => e.seq)).toEqual((await taskEvents(t, created.task_id)).map((e) => String(e.seq)));

    // Always silent: waitForTask gives up on the stream and long-polls to the end.
    const always = recording((request) => (new URL(request.url).pathname.endsWith("/events") ? silent() : undefined));
    const polling = clientFor(t, always.fetch);
    const second = await polling.createTask({ task_type: "cl_steps" });
    const started = Date.now();
    expect((await polling.waitForTask(second.task_id, { timeoutMs: 15_000, streamIdleTimeoutMs: 200 })).status).toBe("completed");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(always.requests.some((r) => new URL(r.url).searchParams.has("wait"))).toBe(true);
  });

  it("a task that does not exist is an ApiError 404 at once", async () => {
    const t = await tenant();
    const error = await clientFor(t).waitForTask("tsk_doesnotexist0000000", { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(404);
    expect((error as ApiError).type).toBe("not_found");
  });
});

describe("retries and Idempotency-Key", () => {
  it("a create whose first response is lost is retried with the same key and makes one task", async () => {
    const t = await tenant();
    let dropped = false;
    const { fetch, requests } = recording(async (request) => {
      if (request.method !== "POST" || dropped) return undefined;
      dropped = true;
      // The server handles the request in full; only its answer never arrives.
      await (await service(request)).text();
      throw new TypeError("Network connection lost.");
    });
    const client = clientFor(t, fetch);
    const task = await client.createTask({ task_type: "cl_done", inputs: { n: 7 } });
    const posts = requests.filter((r) => r.method === "POST");
    expect(posts).toHaveLength(2);
    const key = posts[0]?.headers.get("Idempotency-Key");
    expect(key).toBeTruthy();
    expect(posts[1]?.headers.get("Idempotency-Key")).toBe(key);
    const all = [];
    for await (const page of client.listTasks({ task_type: "cl_done" })) all.push(...page.results);
    expect(all.map((x) => x.task_id)).toEqual([task.task_id]);
  });

  it("uses the caller's Idempotency-Key, and two calls with it make one task", async () => {
    const t = await tenant();
    const { fetch, requests } = recording();
    const client = clientFor(t, fetch);
    const a = await client.createTask({ task_type: "cl_done" }, { idempotencyKey: "order-42" });
    const b = await client.createTask({ task_type: "cl_done" }, { idempotencyKey: "order-42" });
    expect(b.task_id).toBe(a.task_id);
    expect(requests.map((r) => r.headers.get("Idempotency-Key"))).toEqual(["order-42", "order-42"]);
    // Without one, each call gets its own key.
    const c = await client.createTask({ task_type: "cl_done" });
    const d = await client.createTask({ task_type: "cl_done" });
    expect(new Set([a.task_id, c.task_id, d.task_id]).size).toBe(3);
  });

  it("waits as long as Retry-After asks on 429 and 503, then succeeds", async () => {
    const t = await tenant();
    const { fetch, requests } = recording((_request, n) => {
      if (n === 1) return new Response(JSON.stringify({ success: false, status: 429, error: { type: "rate_limited", message: "slow down" } }), { status: 429, headers: { "Retry-After": "1" } });
      if (n === 2) return new Response("unavailable", { status: 503, headers: { "Retry-After": "0" } });
      return undefined;
    });
    const started = Date.now();
    const stats = await clientFor(t, fetch).stats();
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(requests).toHaveLength(3);
    expect(stats.max_concurrent_tasks).toBe(100);
  });

  it("never retries another 4xx, and the ApiError carries status, type and details", async () => {
    const t = await tenant();
    const { fetch, requests } = recording();
    const error = await clientFor(t, fetch)
      .createTask({ task_type: "Not A Type" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 422, type: "validation_error" });
    expect((error as ApiError).details).toBeDefined();
    expect(requests).toHaveLength(1);
    const unauthorized = await createClient({ baseUrl: ORIGIN, apiKey: "sk_wrong", fetch }).stats().catch((e: unknown) => e);
    expect(unauthorized).toMatchObject({ status: 401, type: "unauthorized" });
    expect(requests).toHaveLength(2);
  });

  it("gives up after the configured retries: ApiError for a 500, NetworkError for a dead network", async () => {
    const t = await tenant();
    const failing = recording(() => new Response("{}", { status: 500 }));
    const error = await clientFor(t, failing.fetch, { retries: 2 }).getTask("tsk_x").catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 500 });
    expect(failing.requests).toHaveLength(3);
    const dead = recording(() => {
      throw new TypeError("connection refused");
    });
    const down = await clientFor(t, dead.fetch, { retries: 1 }).getTask("tsk_x").catch((e: unknown) => e);
    expect(down).toBeInstanceOf(NetworkError);
    expect(dead.requests).toHaveLength(2);
  });
});

describe("lists, logs and events", () => {
  it("listTasks iterates over pages until the last, with filters", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.createTask({ task_type: "cl_done", inputs: { i } })).task_id);
    await client.createTask({ task_type: "cl_steps" });
    const pages = [];
    for await (const page of client.listTasks({ task_type: "cl_done", limit: 2 })) pages.push(page);
    expect(pages.map((p) => p.results.length)).toEqual([2, 2, 1]);
    expect(pages.flatMap((p) => p.results.map((r) => r.task_id)).sort()).toEqual([...ids].sort());
    const items = [];
    for await (const task of client.tasks({ task_type: ["cl_done", "cl_steps"], limit: 4 })) items.push(task);
    expect(items).toHaveLength(6);
  });

  it("logLines with follow prints every line once, in order, and ends when the task does", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const created = await client.createTask({ task_type: "cl_steps" });
    const lines = [];
    for await (const line of client.logLines(created.task_id, { follow: true, pollIntervalMs: 100, pageSize: 2 })) lines.push(line.message);
    const steps = lines.filter((m) => m.startsWith("did step"));
    expect(steps).toEqual(["did step 1", "did step 2", "did step 3", "did step 4"]);
    expect(lines.at(-1)).toContain("processing → completed");
    expect(new Set(lines).size).toBe(lines.length);
    const page = await client.logs(created.task_id);
    expect(page.results.map((l) => l.message)).toEqual(lines);
  });

  it("events reconnects with Last-Event-ID after a dropped connection and repeats nothing", async () => {
    const t = await tenant();
    const lastIds: (string | null)[] = [];
    let connections = 0;
    const { fetch } = recording(async (request) => {
      if (!new URL(request.url).pathname.endsWith("/events")) return undefined;
      lastIds.push(request.headers.get("Last-Event-ID"));
      connections++;
      const response = await service(request);
      if (connections > 2 || !response.body) return response;
      // Cut the connection after its first event: the reader sees the body end.
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let text = "";
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await reader.read();
          if (done) return controller.close();
          text += decoder.decode(value, { stream: true });
          controller.enqueue(value);
          if (/(^|\n)id: [^\n]*\n(?:[^\n]+\n)*\n/.test(text)) {
            await reader.cancel();
            controller.close();
          }
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    });
    const client = clientFor(t, fetch);
    const created = await client.createTask({ task_type: "cl_steps" });
    const events = [];
    for await (const event of client.events(created.task_id, { lastEventId: "0" })) events.push(event);
    expect(connections).toBeGreaterThanOrEqual(3);
    expect(lastIds[0]).toBe("0");
    // Each reconnection resumes after the last event the client had.
    for (const resumed of lastIds.slice(1)) expect(events.map((e) => e.seq)).toContain(resumed);
    const stored = (await taskEvents(t, created.task_id)).map((e) => String(e.seq));
    expect(events.map((e) => e.seq)).toEqual(stored);
    expect(events[0]?.type).toBe("task.created");
    expect(events.at(-1)?.type).toBe("task.completed");
    expect(events.at(-1)?.data.task.status).toBe("completed");
    expect(events.every((e) => e.data.task.task_id === created.task_id && e.namespace_id === t.namespaceId)).toBe(true);
  });

  it("the namespace stream filters by task type and status", async () => {
    const t = await tenant();
    const client = clientFor(t);
    const controller = new AbortController();
    const other = await client.createTask({ task_type: "cl_done" });
    const wanted = await client.createTask({ task_type: "cl_steps" });
    const got = [];
    try {
      for await (const event of client.events({ task_type: "cl_steps", status: ["completed", "failed"] }, { lastEventId: "0", signal: controller.signal })) {
        got.push(event);
        if (event.data.task.task_id === wanted.task_id) controller.abort();
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
    expect(got.map((e) => [e.type, e.data.task.task_id])).toEqual([["task.completed", wanted.task_id]]);
    expect(got.some((e) => e.data.task.task_id === other.task_id)).toBe(false);
  });
});

describe("verifyWebhook", () => {
  it("accepts a real signed delivery and rejects a tampered body, another secret or an old timestamp", async () => {
    const t = await tenant();
    endpoints = fakeEndpoints();
    const hook = await call("/v1/webhooks", { token: t.key, body: { url: `${HOOK_BASE}client-verify`, event_types: ["task.completed"] } });
    expect(hook.status).toBe(201);
    const secret = hook.body.secret as string;
    const task = await clientFor(t).createTask({ task_type: "cl_done" });
    const delivery = await eventually(async () => endpoints?.at("client-verify").find((r) => r.body.data.task?.task_id === task.task_id));
    const event = verifyWebhook(secret, delivery.raw, delivery.headers);
    expect(event.type).toBe("task.completed");
    expect(event.namespace_id).toBe(t.namespaceId);
    if (event.type === "task.completed") expect(event.data.task.outputs).toEqual({ echo: {} });
    // A plain header object (Node's req.headers) and a byte body work too.
    const plain = Object.fromEntries(delivery.headers);
    expect(verifyWebhook(secret, new TextEncoder().encode(delivery.raw), plain).id).toBe(event.id);
    expect(() => verifyWebhook(secret, delivery.raw.replace("completed", "cancelled"), delivery.headers)).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(`whsec_${btoa("y".repeat(32))}`, delivery.raw, delivery.headers)).toThrow(WebhookVerificationError);
    const old = String(Number(plain["webhook-timestamp"]) - 600);
    expect(() => verifyWebhook(secret, delivery.raw, { ...plain, "webhook-timestamp": old })).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(secret, delivery.raw, { ...plain, "webhook-signature": "" })).toThrow(WebhookVerificationError);
  });
});

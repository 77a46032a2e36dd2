import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { TestNamespaceDO } from "./namespace-do";
import type { Task } from "../src/tasks/model";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { ADMIN, call, createTask as createAnyTask, eventually, ORIGIN, sleep, stub, tenant, type Tenant } from "./helpers";
import { allEvents, query } from "./inspect";
import { SseReader } from "./sse";

let processor: ReturnType<typeof fakeProcessor> | null = null;
const readers: SseReader[] = [];
beforeEach(() => {
  processor = fakeProcessor();
});
afterEach(async () => {
  processor?.restore();
  processor = null;
  await Promise.all(readers.splice(0).map((r) => r.close()));
});

const registered = new Set<string>();

/** Creates a task of a type the fake processor takes (registered on first use in the namespace). */
async function createTask(t: Tenant, body: { task_type: string } & Record<string, unknown>): Promise<Task> {
  if (!registered.has(`${t.namespaceId}/${body.task_type}`)) {
    const put = await call(`/v1/processors/${body.task_type}`, { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 60 } });
    expect([200, 201]).toContain(put.status);
    registered.add(`${t.namespaceId}/${body.task_type}`);
  }
  return createAnyTask(t, body);
}

async function open(path: string, t: Tenant, headers: Record<string, string> = {}): Promise<SseReader> {
  const reader = await SseReader.open(path, t.key, headers);
  readers.push(reader);
  return reader;
}

/** A task held by the fake processor, so the test drives it through its callbacks. */
async function runningTask(t: Tenant, taskType = "streamed_job"): Promise<{ task: Task; report: (kind: string, body: unknown) => Promise<number> }> {
  const task = await createTask(t, { task_type: taskType });
  const dispatch = await eventually(async () => processor?.last(task.task_id));
  const report = async (kind: string, body: unknown) =>
    (await call(`/v1/tasks/${task.task_id}/callback/${kind}`, { token: dispatch.body.callback.token, body })).status;
  return { task, report };
}

/** The namespace's Durable Object is reset, as by a crash or a deploy: open streams break. */
const restart = (t: Tenant) => runInDurableObject(stub(t), (_instance, state) => state.abort("restart")).catch(() => undefined);

const cancel = (t: Tenant, taskId: string) => call(`/v1/tasks/${taskId}/cancel`, { token: t.key, method: "POST" });

/** The stored task events of the namespace, as (seq, type, task) triples. */
async function storedTaskEvents(t: Tenant) {
  return (await allEvents(t)).filter((e) => e.task_id !== null).map((e) => ({ id: e.seq, event: e.event_type, task_id: e.task_id }));
}

describe("a task's Server-Sent Events stream", () => {
  it("replays the task's history, goes live, and ends after the terminal event", async () => {
    const t = await tenant();
    const { task, report } = await runningTask(t);
    const stream = await open(`/v1/tasks/${task.task_id}/events`, t);
    expect(stream.response.headers.get("Content-Type")).toMatch(/^text\/event-stream/);

    const replayed = await stream.waitFor(3);
    expect(replayed.map((m) => m.event)).toEqual(["task.created", "task.queued", "task.processing"]);
    expect(stream.comments[0]).toBe("connected");

    expect(await report("progress", { percent: 40, message: "halfway there" })).toBe(200);
    const [, , , progress] = await stream.waitFor(4);
    expect(progress).toMatchObject({ event: "task.progress", data: { type: "task.progress", data: { task: { task_id: task.task_id, progress: { percent: 40 } } } } });

    expect(await report("complete", { outputs: { rows: 3 } })).toBe(200);
    await stream.waitForEnd();
    const all = stream.messages;
    expect(all.at(-1)).toMatchObject({ event: "task.completed", data: { data: { task: { status: "completed", outputs: { rows: 3 } } } } });

    // Each message is the stored event: its sequence number, type and webhook body.
    const stored = await storedTaskEvents(t);
    expect(all.map((m) => ({ id: m.id, event: m.event, task_id: m.data.data.task.task_id }))).toEqual(stored.filter((e) => e.task_id === task.task_id));
    for (const m of all) expect(m.data).toMatchObject({ id: expect.stringMatching(/^evt_/), namespace_id: t.namespaceId, created_at: expect.any(String) });
  });

  it("replays a finished task to its terminal event and ends at once, also after it left for D1", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "never_run", priority: 1 });
    await cancel(t, task.task_id);
    const stream = await open(`/v1/tasks/${task.task_id}/events`, t);
    await stream.waitForEnd();
    expect(stream.messages.map((m) => m.event).at(-1)).toBe("task.cancelled");

    // Once its record is in D1 the task is gone from the Durable Object; its events are still kept.
    await stub(t).flushNow();
    expect(await query(t, "SELECT task_id FROM tasks WHERE task_id = ?", task.task_id)).toEqual([]);
    const again = await open(`/v1/tasks/${task.task_id}/events`, t);
    await again.waitForEnd();
    expect(again.messages.map((m) => m.id)).toEqual(stream.messages.map((m) => m.id));

    // Resumed after its last event, the stream of a finished task has nothing more and ends.
    const after = await open(`/v1/tasks/${task.task_id}/events`, t, { "Last-Event-ID": String(stream.messages.at(-1)!.id) });
    await after.waitForEnd();
    expect(after.messages).toEqual([]);
  });
});

describe("the namespace's event stream", () => {
  it("sends only the events of the task types and statuses asked for", async () => {
    const t = await tenant();
    const stream = await open("/v1/events?task_type=alpha,gamma&status=cancelled", t);
    const alpha = await createTask(t, { task_type: "alpha" });
    const beta = await createTask(t, { task_type: "beta" });
    await cancel(t, beta.task_id);
    await cancel(t, alpha.task_id);
    const [first] = await stream.waitFor(1);
    expect(first).toMatchObject({ event: "task.cancelled", data: { data: { task: { task_id: alpha.task_id } } } });
    const gamma = await createTask(t, { task_type: "gamma" });
    await cancel(t, gamma.task_id);
    await stream.waitFor(2);
    await sleep(100);
    expect(stream.messages.map((m) => m.data.data.task.task_id)).toEqual([alpha.task_id, gamma.task_id]);
    expect(stream.ended).toBe(false);
  });

  it("starts live without Last-Event-ID, and sends keep-alive comments while quiet", async () => {
    const t = await tenant();
    const before = await createTask(t, { task_type: "old" });
    await cancel(t, before.task_id);
    const stream = await open("/v1/events", t);
    const after = await createTask(t, { task_type: "new" });
    await stream.waitFor(1);
    expect(stream.messages.every((m) => m.data.data.task.task_id === after.task_id)).toBe(true);
    expect(stream.messages.some((m) => m.data.data.task.task_id === before.task_id)).toBe(false);
    // STREAM_KEEPALIVE_MS is 200 in the test configuration.
    await eventually(async () => (stream.comments.filter((c) => c === "keep-alive").length >= 2 ? true : undefined));
  });

  it("names its starting point at once, so a client cut off before the first event resumes without a gap", async () => {
    const t = await tenant();
    const before = await createTask(t, { task_type: "before" });
    await cancel(t, before.task_id);
    const first = await open("/v1/events", t);
    await eventually(async () => (first.startIds.length === 1 ? true : undefined));
    const start = first.startIds[0]!;
    expect(start).toBe((await storedTaskEvents(t)).at(-1)!.id);
    await first.close();
    // Events while the client is away, then it comes back with the id it was given.
    const missed = await createTask(t, { task_type: "while_away" });
    const second = await open("/v1/events", t, { "Last-Event-ID": String(start) });
    const [created] = await second.waitFor(1);
    expect(created).toMatchObject({ event: "task.created", data: { data: { task: { task_id: missed.task_id } } } });
    expect(second.startIds).toEqual([start]);
  });

  it("resumed with Last-Event-ID misses no event and repeats none, across a Durable Object restart", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    const burst = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const task = await createTask(t, { task_type: `burst_${i % 3}`, priority: i });
        if (i % 2 === 0) await cancel(t, task.task_id);
      }
    };
    const first = await open("/v1/events", t);
    await burst(6);
    await first.waitFor(6);

    // The object restarts: the open stream breaks; more happens while nobody listens.
    await restart(t);
    await first.waitForEnd();
    const seen = [...first.messages];
    await burst(5);
    // Resume from the last event seen, by header, then by query parameter after a second cut.
    const second = await open("/v1/events", t, { "Last-Event-ID": String(seen.at(-1)!.id) });
    await burst(3);
    let stored = await storedTaskEvents(t);
    await second.waitFor(stored.length - seen.length);
    await second.close();
    seen.push(...second.messages);

    await burst(2);
    const third = await open(`/v1/events?last_event_id=${seen.at(-1)!.id}`, t);
    const triple = (m: { id: number; event: string; data: any }) => ({ id: m.id, event: m.event, task_id: m.data.data.task.task_id });
    // Dispatches go on in the background: wait until what arrived is exactly what is stored.
    await eventually(async () => {
      const stored = await storedTaskEvents(t);
      return JSON.stringify([...seen, ...third.messages].map(triple)) === JSON.stringify(stored) ? true : undefined;
    });
    seen.push(...third.messages);
    expect(seen.filter((m) => m.event === "task.created")).toHaveLength(16);
    expect(new Set(seen.map((m) => m.id)).size).toBe(seen.length);
  });

  it("cuts off a reader that stops reading once 1 MiB is unsent, and it resumes by Last-Event-ID without a gap", async () => {
    const t = await tenant();
    await createTask(t, { task_type: "slow_reader" });
    const padding = "x".repeat(60 * 1024);
    const EVENTS = 40;
    // The stream's key must be valid: the object's check of its streams' keys ends the others.
    const keys = await call<{ results: { key_id: string }[] }>(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN });
    const keyId = keys.body.results[0]!.key_id;
    const seen = await runInDurableObject(stub(t), async (instance: TestNamespaceDO, state) => {
      // A stream nobody reads: what it is sent stays queued inside the object.
      const response = await instance.fetch(new Request(`https://namespace/streams?key_id=${keyId}`));
      for (let i = 0; i < EVENTS; i++) {
        const body = { id: `evt_slow${i}`, type: "task.progress", data: { task: { task_id: "tsk_slow", task_type: "slow_reader", status: "processing", padding } } };
        state.storage.sql.exec(
          "INSERT INTO events (event_id, event_type, task_id, created_at, data) VALUES (?, 'task.progress', 'tsk_slow', ?, ?)",
          body.id,
          Date.now(),
          JSON.stringify(body),
        );
      }
      (instance as unknown as { streams: { notify(): void } }).streams.notify();
      // Pages go out turn after turn while nobody reads, until the stream is cut.
      await eventually(async () => (instance.streamCounts().sse === 0 ? true : undefined));
      const text = await response.text();
      return {
        bytes: new TextEncoder().encode(text).byteLength,
        ids: [...text.matchAll(/^id: (\d+)\nevent/gm)].map((m) => Number(m[1])),
        eventIds: [...text.matchAll(/^data: \{"id":"(evt_\w+)"/gm)].map((m) => m[1]!),
      };
    });
    // At most 1 MiB was held, and close to it: a stalled reader is cut by bytes, not by count.
    expect(seen.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(seen.bytes).toBeGreaterThan(1024 * 1024 - 62 * 1024);
    expect(seen.ids.length).toBeLessThan(EVENTS);
    // What it got is a gapless prefix: resuming from its last id misses nothing.
    expect(seen.ids).toEqual(seen.ids.map((_, i) => seen.ids[0]! + i));
    const resumed = await open("/v1/events", t, { "Last-Event-ID": String(seen.ids.at(-1)) });
    const lastSlow = `evt_slow${EVENTS - 1}`;
    await eventually(async () => (resumed.messages.some((m) => m.data.id === lastSlow) ? true : undefined));
    const rest = resumed.messages;
    expect(rest.map((m) => m.id)).toEqual(rest.map((_, i) => seen.ids.at(-1)! + 1 + i));
    const slowIds = [...seen.eventIds, ...rest.map((m) => m.data.id)].filter((id: string) => id.startsWith("evt_slow"));
    expect(slowIds).toEqual(Array.from({ length: EVENTS }, (_, i) => `evt_slow${i}`));
  });

  it("refuses bad requests in the contract's shape", async () => {
    const t = await tenant();
    const other = await tenant();
    const task = await createTask(other, { task_type: "theirs" });
    const get = (path: string, headers: Record<string, string> = {}, token: string | null = t.key) => call(path, { token, headers });

    expect((await get("/v1/events", {}, null)).status).toBe(401);
    expect((await get("/v1/events", {}, "sk_nope")).status).toBe(401);
    expect((await get(`/v1/tasks/${task.task_id}/events`)).status).toBe(404);
    expect((await get("/v1/tasks/tsk_missing/events")).status).toBe(404);
    const bad = await get("/v1/events", { "Last-Event-ID": "12; DROP TABLE events" });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ success: false, status: 422, error: { type: "validation_error" } });
    expect((await get("/v1/events?last_event_id=-1")).status).toBe(422);
    expect((await get("/v1/events?status=sleeping")).status).toBe(422);
    expect((await get("/v1/events?task_type=Bad%20Type")).status).toBe(422);
    expect((await get("/v1/events", { Upgrade: "h2c" })).status).toBe(422);
  });
});

describe("the WebSocket stream", () => {
  async function socket(path: string, headers: Record<string, string>) {
    const response = await exports.default.fetch(new Request(`${ORIGIN}${path}`, { headers: { Upgrade: "websocket", ...headers } }));
    const ws = response.webSocket;
    const frames: any[] = [];
    const closed: { code: number | null } = { code: null };
    if (ws) {
      ws.accept();
      ws.addEventListener("message", (e) => frames.push(JSON.parse(e.data as string)));
      ws.addEventListener("close", (e) => (closed.code = e.code));
    }
    return { response, ws, frames, closed };
  }

  it("sends a task's events as JSON frames and closes with 1000 after the terminal event", async () => {
    const t = await tenant();
    const { task, report } = await runningTask(t, "socket_job");
    const s = await socket(`/v1/tasks/${task.task_id}/events`, { Authorization: `Bearer ${t.key}` });
    expect(s.response.status).toBe(101);
    await eventually(async () => (s.frames.length >= 3 ? true : undefined));
    expect(await report("progress", { percent: 70 })).toBe(200);
    expect(await report("fail", { error: { code: "bad_input", message: "no" }, retryable: false })).toBe(200);
    await eventually(async () => (s.closed.code !== null ? true : undefined));
    expect(s.closed.code).toBe(1000);
    expect(s.frames.map((f) => f.event)).toEqual(["task.created", "task.queued", "task.processing", "task.progress", "task.failed"]);
    expect(s.frames.at(-1)).toMatchObject({ id: expect.stringMatching(/^\d+$/), data: { data: { task: { error: { code: "bad_input" } } } } });
    const stored = (await storedTaskEvents(t)).filter((e) => e.task_id === task.task_id);
    expect(s.frames.map((f) => Number(f.id))).toEqual(stored.map((e) => e.id));
  });

  it("takes the key as a subprotocol, keeps streaming after the object hibernates, and resumes by last_event_id", async () => {
    const t = await tenant();
    const refused = await socket("/v1/events", { "Sec-WebSocket-Protocol": "edge-tasks, bearer.sk_wrong" });
    expect(refused.response.status).toBe(401);

    const s = await socket("/v1/events?status=created", { "Sec-WebSocket-Protocol": `edge-tasks, bearer.${t.key}` });
    expect(s.response.status).toBe(101);
    expect(s.response.headers.get("Sec-WebSocket-Protocol")).toBe("edge-tasks");
    const a = await createTask(t, { task_type: "ws_a" });
    await eventually(async () => (s.frames.length === 1 ? true : undefined));
    expect(s.frames[0]).toMatchObject({ event: "task.created", data: { data: { task: { task_id: a.task_id } } } });

    // The object hibernates: the socket stays open and the next event wakes it.
    await evictDurableObject(stub(t));
    const b = await createTask(t, { task_type: "ws_b" });
    await eventually(async () => (s.frames.length === 2 ? true : undefined));
    expect(s.frames[1].data.data.task.task_id).toBe(b.task_id);

    // A resumed socket replays what came after the given sequence number.
    const resumed = await socket(`/v1/events?status=created&last_event_id=${s.frames[0].id}`, { Authorization: `Bearer ${t.key}` });
    await eventually(async () => (resumed.frames.length === 1 ? true : undefined));
    expect(resumed.frames[0].data.data.task.task_id).toBe(b.task_id);
    s.ws?.close();
    resumed.ws?.close();
  });
});

describe("long-poll", () => {
  it("answers as soon as the task changes", async () => {
    const t = await tenant();
    const { task, report } = await runningTask(t, "polled_job");
    const plain = await call<Task>(`/v1/tasks/${task.task_id}`, { token: t.key });
    const etag = plain.headers.get("ETag");
    expect(etag).toMatch(/^"[\w-]+"$/);
    // A minute's wait: the test times out (30 s) unless the change wakes it.
    const waiting = call<Task>(`/v1/tasks/${task.task_id}?wait=60`, { token: t.key, headers: { "If-None-Match": etag! } });
    await sleep(200);
    expect(await report("progress", { percent: 55 })).toBe(200);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect(answer.body.progress.percent).toBe(55);
    expect(answer.headers.get("ETag")).not.toBe(etag);
  });

  it("answers at once when the tag is stale or the task finished, else at the deadline as it stands", async () => {
    const t = await tenant();
    const { task, report } = await runningTask(t, "polled_job");
    const stale = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).headers.get("ETag")!;
    expect(await report("progress", { percent: 10 })).toBe(200);
    const changed = await call<Task>(`/v1/tasks/${task.task_id}?wait=60`, { token: t.key, headers: { "If-None-Match": stale } });
    expect(changed.body.progress.percent).toBe(10);

    const current = changed.headers.get("ETag")!;
    const unchanged = await call<Task>(`/v1/tasks/${task.task_id}?wait=1`, { token: t.key, headers: { "If-None-Match": current } });
    expect(unchanged.body.status).toBe("processing");
    expect(unchanged.headers.get("ETag")).toBe(current);

    await cancel(t, task.task_id);
    const finished = await call<Task>(`/v1/tasks/${task.task_id}?wait=60`, { token: t.key });
    expect(finished.body.status).toBe("cancelled");
  });

  it("refuses a wait outside 0–60 seconds and unknown tasks", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "x" });
    for (const wait of ["61", "-1", "1.5", "soon"]) {
      const res = await call(`/v1/tasks/${task.task_id}?wait=${wait}`, { token: t.key });
      expect(res.status, wait).toBe(422);
    }
    expect((await call("/v1/tasks/tsk_nope?wait=5", { token: t.key })).status).toBe(404);
  });
});

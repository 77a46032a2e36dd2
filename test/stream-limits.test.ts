import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { TestNamespaceDO } from "./namespace-do";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { readSocketState } from "../src/namespace/stream-sinks";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { ADMIN, call, eventually, ORIGIN, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance } from "./inspect";
import { SseReader } from "./sse";

let processor: ReturnType<typeof fakeProcessor> | null = null;
const readers: SseReader[] = [];
const sockets: WebSocket[] = [];
beforeEach(() => {
  processor = fakeProcessor();
});
afterEach(async () => {
  processor?.restore();
  processor = null;
  await Promise.all(readers.splice(0).map((r) => r.close()));
  for (const ws of sockets.splice(0)) ws.close();
});

async function sse(path: string, key: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const reader = await SseReader.open(path, key, headers);
  readers.push(reader);
  return reader;
}

/** A WebSocket stream through the Worker; `closed.code` is set when the server closes it. */
async function socket(path: string, key: string) {
  const response = await exports.default.fetch(new Request(`${ORIGIN}${path}`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${key}` } }));
  const ws = response.webSocket;
  const frames: { id: string; event: string; data: { id: string } }[] = [];
  const closed: { code: number | null; reason: string } = { code: null, reason: "" };
  if (ws) {
    ws.accept();
    sockets.push(ws);
    ws.addEventListener("message", (e) => void frames.push(JSON.parse(e.data as string)));
    ws.addEventListener("close", (e) => Object.assign(closed, { code: e.code, reason: e.reason }));
  }
  return { response, ws, frames, closed };
}

/** A second key of the tenant's namespace, and the ids of both. */
async function secondKey(t: Tenant): Promise<{ key: string; keyId: string; firstKeyId: string }> {
  const made = await call(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN, body: { name: "other" } });
  expect(made.status).toBe(201);
  const listed = await call<{ results: { key_id: string }[] }>(`/v1/namespaces/${t.name}/api-keys`, { token: ADMIN });
  const firstKeyId = listed.body.results.map((k) => k.key_id).find((id) => id !== made.body.key_id)!;
  return { key: made.body.api_key, keyId: made.body.key_id, firstKeyId };
}

const revoke = (t: Tenant, keyId: string) => call(`/v1/namespaces/${t.name}/api-keys/${keyId}`, { token: ADMIN, method: "DELETE" });

/** Revokes the key in D1 alone, as if the call to the namespace's object had failed. */
const revokeInD1Only = (keyId: string) => env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?").bind(new Date().toISOString(), keyId).run();

/** Creates a task with `key`, so that every stream of the namespace has an event to hear. */
async function emitEvent(key: string): Promise<string> {
  expect([200, 201]).toContain((await call("/v1/processors/held_job", { token: key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 60 } })).status);
  const created = await call<{ task_id: string }>("/v1/tasks", { token: key, body: { task_type: "held_job" } });
  expect(created.status).toBe(201);
  return created.body.task_id;
}

const ended = (check: () => boolean) => eventually(async () => (check() ? true : undefined));

describe("revoking an API key", () => {
  it("ends the key's SSE streams and closes its WebSockets at once, and only the key's", async () => {
    const t = await tenant();
    const other = await secondKey(t);
    const revokedSse = await sse("/v1/events", t.key);
    const revokedSocket = await socket("/v1/events", t.key);
    const keptSse = await sse("/v1/events", other.key);
    const keptSocket = await socket("/v1/events", other.key);
    expect(revokedSocket.response.status).toBe(101);

    expect((await revoke(t, other.firstKeyId)).status).toBe(200);
    await ended(() => revokedSse.ended && revokedSocket.closed.code !== null);
    expect(revokedSocket.closed.code).toBe(1008);
    expect(revokedSse.comments).toContain("the API key of this stream was revoked");
    expect((await call("/v1/events", { token: t.key })).status).toBe(401);

    // The other key's streams go on and hear the next event.
    await emitEvent(other.key);
    await ended(() => keptSse.messages.length > 0 && keptSocket.frames.length > 0);
    expect(keptSse.ended).toBe(false);
    expect(keptSocket.closed.code).toBeNull();
    expect((await runInDurableObject(stub(t), (instance: TestNamespaceDO) => instance.streamCounts())).sse).toBe(1);
  });
});

describe("revoking an API key, when the object was away", () => {
  it("closes the key's WebSockets also after the object hibernated", async () => {
    const t = await tenant();
    const { firstKeyId } = await secondKey(t);
    const s = await socket("/v1/events", t.key);
    expect(s.response.status).toBe(101);
    await evictDurableObject(stub(t));
    expect((await revoke(t, firstKeyId)).status).toBe(200);
    await ended(() => s.closed.code !== null);
    expect(s.closed).toEqual({ code: 1008, reason: "API key revoked" });
  });

  it("ends the streams of a key revoked in D1 alone at the next key check, within 60 s", async () => {
    const t = await tenant();
    const other = await secondKey(t);
    const revokedSse = await sse("/v1/events", t.key);
    const revokedSocket = await socket("/v1/events", t.key);
    const kept = await sse("/v1/events", other.key);
    await revokeInD1Only(other.firstKeyId);

    // The check is not due yet: the streams are still open a second later.
    await advance(t, 1000);
    expect(revokedSse.ended || revokedSocket.closed.code !== null).toBe(false);
    // 25 s after the streams opened the object asks D1, and ends the revoked key's streams.
    await advance(t, 25_000);
    await ended(() => revokedSse.ended && revokedSocket.closed.code !== null);
    expect(revokedSocket.closed.code).toBe(1008);
    expect(kept.ended).toBe(false);
    await emitEvent(other.key);
    await ended(() => kept.messages.length > 0);
  });

  it("closes hibernated WebSockets of a key revoked in D1 alone at the first alarm after the object wakes", async () => {
    const t = await tenant();
    const { firstKeyId } = await secondKey(t);
    const s = await socket("/v1/events", t.key);
    await evictDurableObject(stub(t));
    await revokeInD1Only(firstKeyId);
    // The alarm set when the socket opened survives the eviction and runs the check.
    expect(await runDurableObjectAlarm(stub(t))).toBe(true);
    await ended(() => s.closed.code !== null);
    expect(s.closed.code).toBe(1008);
  });

  it("opens no new stream for a key it was told is revoked, even if a Worker still holds the key in its cache", async () => {
    const t = await tenant();
    const answer = await runInDurableObject(stub(t), async (instance: NamespaceDO) => {
      instance.endStreamsOf("key_cached");
      const response = await instance.fetch(new Request("https://namespace/streams?key_id=key_cached"));
      return { status: response.status, body: await response.json() };
    });
    expect(answer).toMatchObject({ status: 401, body: { success: false, status: 401, error: { type: "unauthorized" } } });
  });
});

describe("the max_open_streams quota", () => {
  const setQuota = (t: Tenant, limit: number) =>
    runInDurableObject(stub(t), (instance: NamespaceDO) => instance.configure(t.namespaceId, { max_open_streams: limit }));

  it("refuses the stream beyond it with 429 and Retry-After, counting SSE, WebSockets and long-polls", async () => {
    const t = await tenant();
    await setQuota(t, 2);
    const first = await sse("/v1/events", t.key);
    const s = await socket("/v1/events", t.key);
    expect(s.response.status).toBe(101);

    const refused = await call("/v1/events", { token: t.key });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(refused.body).toMatchObject({ success: false, status: 429, error: { type: "rate_limited", details: { quota: "max_open_streams", limit: 2 } } });
    expect((await socket("/v1/events", t.key)).response.status).toBe(429);
    const taskId = await emitEvent(t.key);
    const poll = await call(`/v1/tasks/${taskId}?wait=30`, { token: t.key, headers: { "If-None-Match": '"nothing-matches"' } });
    // A stale tag answers at once without waiting, so it takes no slot.
    expect(poll.status).toBe(200);
    // Once dispatched the task holds still, so a long-poll on its tag would wait.
    await waitForStatus(t, taskId, "processing");
    const etag = (await call(`/v1/tasks/${taskId}`, { token: t.key })).headers.get("ETag")!;
    const waiting = await call(`/v1/tasks/${taskId}?wait=30`, { token: t.key, headers: { "If-None-Match": etag } });
    expect(waiting.status).toBe(429);
    expect(waiting.headers.get("Retry-After")).toMatch(/^\d+$/);

    // A closed stream frees its slot; a long-poll then takes it and is counted in turn.
    await first.close();
    s.ws?.close();
    await eventually(async () => ((await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.streamCounts())).sse === 0 ? true : undefined));
    const again = await sse("/v1/events", t.key);
    expect(again.ended).toBe(false);
    const longPoll = call(`/v1/tasks/${taskId}?wait=30`, { token: t.key, headers: { "If-None-Match": etag } });
    await eventually(async () => ((await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.streamCounts())).long_polls === 1 ? true : undefined));
    expect((await call("/v1/events", { token: t.key })).status).toBe(429);
    await call(`/v1/tasks/${taskId}/cancel`, { token: t.key, method: "POST" });
    expect((await longPoll).status).toBe(200);
  });
});

describe("a WebSocket's backlog", () => {
  it("goes out a page per turn, not in one burst, and arrives whole and in order", async () => {
    const t = await tenant();
    const EVENTS = 30;
    const padding = "y".repeat(60 * 1024);
    // A valid key: the object's check of its streams' keys would close a socket of an unknown one.
    const { firstKeyId } = await secondKey(t);
    const client = await runInDurableObject(stub(t), (instance: NamespaceDO, state) => {
      for (let i = 0; i < EVENTS; i++) {
        const body = { id: `evt_page${i}`, type: "task.progress", data: { task: { task_id: "tsk_page", task_type: "paged", status: "processing", padding } } };
        state.storage.sql.exec(
          "INSERT INTO events (event_id, event_type, task_id, created_at, data) VALUES (?, 'task.progress', 'tsk_page', ?, ?)",
          body.id, Date.now(), JSON.stringify(body),
        );
      }
      const pair = new WebSocketPair();
      const streams = (instance as unknown as { streams: { openSocket(s: WebSocket, o: unknown): void } }).streams;
      streams.openSocket(pair[1], { filter: { task_id: null, task_types: null, statuses: null }, after: 0, live: true, keyId: firstKeyId });
      // Right after the open only the first page has gone out; the rest follows on later turns.
      const cursor = readSocketState(pair[1])!.cursor;
      expect(cursor).toBeGreaterThan(0);
      expect(cursor).toBeLessThan(EVENTS);
      const frames: string[] = [];
      pair[0].accept();
      pair[0].addEventListener("message", (e) => void frames.push(JSON.parse(e.data as string).data.id));
      return eventually(async () => (frames.length === EVENTS ? frames : undefined));
    });
    expect(client).toEqual(Array.from({ length: EVENTS }, (_, i) => `evt_page${i}`));
  });
});

describe("Last-Event-ID", () => {
  it("beyond the newest event gets 422, also once old events are pruned; the newest itself resumes", async () => {
    const t = await tenant();
    await emitEvent(t.key);
    const newest = await runInDurableObject(stub(t), (_i: NamespaceDO, state) => state.storage.sql.exec<{ n: number }>("SELECT MAX(seq) AS n FROM events").one().n);
    const beyond = await call("/v1/events", { token: t.key, headers: { "Last-Event-ID": String(newest + 1000) } });
    expect(beyond.status).toBe(422);
    expect(beyond.body).toMatchObject({ success: false, status: 422, error: { type: "validation_error", details: { field: "last_event_id" } } });
    expect((await socket(`/v1/events?last_event_id=${newest + 1000}`, t.key)).response.status).toBe(422);
    const atHead = await sse("/v1/events", t.key, { "Last-Event-ID": String(newest) });
    expect(atHead.response.status).toBe(200);
    await atHead.close();
    // Pruned events leave the numbering where it was: a cursor from before is still valid.
    await runInDurableObject(stub(t), (_i: NamespaceDO, state) => void state.storage.sql.exec("DELETE FROM events"));
    expect((await sse("/v1/events", t.key, { "Last-Event-ID": String(newest) })).response.status).toBe(200);
  });
});

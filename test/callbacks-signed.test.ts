import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { call, createTask, eventually, ORIGIN, stub, tenant, type Tenant } from "./helpers";

// Issue 11: a processor callback's token is signed under its namespace's key and bound to its
// task, so the Worker checks it before the body without a Durable Object call of its own; the
// object still fences the report itself.

let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => {
  processor?.restore();
  processor = null;
  vi.restoreAllMocks();
});

/** Spies on the object's RPC methods (on the prototype: RPC calls only methods of the class). */
async function spyOnObject(t: Tenant) {
  return runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const proto = Object.getPrototypeOf(instance) as NamespaceDO;
    return { isCallbackToken: vi.spyOn(proto, "isCallbackToken"), callbackKey: vi.spyOn(proto, "callbackKey"), report: vi.spyOn(proto, "report") };
  });
}

/** A task of a processor's type, and the token of its dispatch. */
async function dispatched(t: Tenant, taskType: string): Promise<{ taskId: string; token: string }> {
  const registered = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
  expect([200, 201]).toContain(registered.status);
  const task = await createTask(t, { task_type: taskType });
  const dispatch = await eventually(async () => processor?.last(task.task_id));
  return { taskId: task.task_id, token: dispatch.body.callback.token };
}

/** Sends a callback whose body gives one chunk and then neither more nor an end. */
async function withEndlessBody(path: string, token: string): Promise<number | "no answer"> {
  let chunks = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (chunks++ === 0) {
        controller.enqueue(new TextEncoder().encode('{"percent":'));
        return;
      }
      return new Promise<void>(() => {});
    },
  });
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}` };
  const request = new Request(`${ORIGIN}${path}`, { method: "POST", body, headers, duplex: "half" } as RequestInit);
  // A server that waits for the body never answers: the guard turns that hang into a failure.
  const guard = new Promise<"no answer">((resolve) => setTimeout(() => resolve("no answer"), 5000));
  return Promise.race([exports.default.fetch(request).then((r) => r.status), guard]);
}

/** Changes one character of the token's MAC. */
const tamper = (token: string) => token.slice(0, -5) + (token.at(-5) === "A" ? "B" : "A") + token.slice(-4);

describe("signed callback tokens", () => {
  it("are checked in the Worker: the object is asked for the namespace's key once, never about a token", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    const first = await dispatched(t, "signed_job");
    const second = await dispatched(t, "signed_job");
    const spies = await spyOnObject(t);
    for (const { taskId, token } of [first, second]) {
      const base = `/v1/tasks/${taskId}/callback`;
      expect((await call(`${base}/progress`, { token, body: { percent: 50 } })).status).toBe(200);
      expect((await call(`${base}/complete`, { token, body: { outputs: { done: true } } })).status).toBe(200);
    }
    expect(spies.isCallbackToken).not.toHaveBeenCalled();
    expect(spies.callbackKey).toHaveBeenCalledTimes(1);
    expect(spies.report).toHaveBeenCalledTimes(4);
    // The object still fences: a report after the completion changes nothing.
    const late = await call(`/v1/tasks/${first.taskId}/callback/progress`, { token: first.token, body: { percent: 60 } });
    expect(late.status).toBe(409);
  });

  it("refuse a token of another task, a changed MAC or another namespace's token with 401 before the body is read", async () => {
    const a = await tenant();
    const b = await tenant();
    processor = fakeProcessor();
    const one = await dispatched(a, "signed_other");
    const two = await dispatched(a, "signed_other");
    const foreign = await dispatched(b, "signed_other");
    const spies = await spyOnObject(a);
    const path = `/v1/tasks/${one.taskId}/callback/progress`;
    expect(await withEndlessBody(path, two.token)).toBe(401);
    expect(await withEndlessBody(path, tamper(one.token))).toBe(401);
    expect(await withEndlessBody(`/v1/tasks/${foreign.taskId}/callback/progress`, foreign.token.replace(b.namespaceId, a.namespaceId))).toBe(401);
    expect(await withEndlessBody(path, one.token.replace(a.namespaceId, b.namespaceId))).toBe(401);
    expect(spies.report).not.toHaveBeenCalled();
    expect(spies.isCallbackToken).not.toHaveBeenCalled();
    // The genuine token still works.
    expect((await call(path, { token: one.token, body: { percent: 10 } })).status).toBe(200);
  });

  it("guessed for a real namespace never reach its object, and are limited per address", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    const { taskId, token } = await dispatched(t, "signed_guess");
    const address = `198.18.0.${Math.floor(Math.random() * 250) + 1}`;
    const spies = await spyOnObject(t);
    const statuses: number[] = [];
    for (let i = 0; i < 250; i++) {
      const guess = `${t.namespaceId}.${crypto.randomUUID().replaceAll("-", "").slice(0, 22)}.${token.slice(-43)}`;
      const res = await call(`/v1/tasks/${taskId}/callback/progress`, { token: guess, body: {}, headers: { "CF-Connecting-IP": address } });
      statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(50);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).toEqual([]);
    expect(spies.report).not.toHaveBeenCalled();
    expect(spies.isCallbackToken).not.toHaveBeenCalled();
    expect(spies.callbackKey.mock.calls.length).toBeLessThanOrEqual(1);
  });

  it("are signed with a key the object makes when it starts, outside any claim's transaction, and keeps", async () => {
    const t = await tenant();
    const stored = await runInDurableObject(stub(t), (instance: NamespaceDO, state) => ({
      row: state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'callback_key'").toArray(),
      key: instance.callbackKey(),
    }));
    // Made before any task was claimed: no transaction of a claim that rolls back can hold it.
    expect(stored.row).toEqual([{ value: stored.key }]);
    expect(stored.key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    processor = fakeProcessor();
    await dispatched(t, "signed_keep");
    expect(await runInDurableObject(stub(t), (instance: NamespaceDO) => instance.callbackKey())).toBe(stored.key);
  });
});

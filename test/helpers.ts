import { env, exports } from "cloudflare:workers";
import type { TestNamespaceDO } from "./namespace-do";
import { expect } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";

export const ADMIN = "test-admin-token";
export const ORIGIN = "http://edge.test";

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  rawBody?: string;
  token?: string | null;
  headers?: Record<string, string>;
}

/** One HTTP request through the Worker's real fetch handler. */
export async function call<T = any>(path: string, options: CallOptions = {}): Promise<ApiResponse<T>> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("Authorization", `Bearer ${options.token}`);
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    if (!headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  }
  const method = options.method ?? (body === undefined ? "GET" : "POST");
  const response = await exports.default.fetch(new Request(`${ORIGIN}${path}`, { method, headers, body }));
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON; keep the text
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

export type LogPage = ApiResponse<{ results: { message: string; level: string; attempt: number }[]; pagination: { next_cursor: string | null } }>;

let counter = 0;

export interface Tenant {
  namespaceId: string;
  name: string;
  key: string;
}

/**
 * Tests make requests far faster than SPEC's default of 100 a second: their namespaces get the
 * highest rate, so that no test is rate limited by accident. A test of the limit sets its own.
 */
export const TEST_REQUESTS_PER_SECOND = 10_000;

/** A fresh namespace with one API key. */
export async function tenant(settings?: Record<string, number | null>): Promise<Tenant> {
  const name = `t${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const body = { namespace_name: name, settings: { requests_per_second: TEST_REQUESTS_PER_SECOND, ...settings } };
  const created = await call("/v1/namespaces", { token: ADMIN, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const key = await call(`/v1/namespaces/${name}/api-keys`, { token: ADMIN, body: { name: "test" } });
  expect(key.status).toBe(201);
  return { namespaceId: created.body.namespace_id, name, key: key.body.api_key };
}

export async function createTask(t: Tenant, body: Record<string, unknown>): Promise<Task> {
  const res = await call<Task>("/v1/tasks", { token: t.key, body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

export async function getTask(t: Tenant, taskId: string): Promise<Task> {
  const res = await call<Task>(`/v1/tasks/${taskId}`, { token: t.key });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits until the task reaches one of `statuses`. */
export async function waitForStatus(t: Tenant, taskId: string, ...statuses: Task["status"][]): Promise<Task> {
  return eventually(
    async () => {
      const task = await getTask(t, taskId);
      return statuses.includes(task.status) ? task : undefined;
    },
    10_000,
    `${taskId} to become ${statuses.join("|")}`,
  );
}

/** The namespace's Durable Object, typed as the test worker binds it (test/worker.ts). */
export const stub = (t: Tenant) => env.NAMESPACE.getByName(t.namespaceId) as unknown as DurableObjectStub<TestNamespaceDO>;

/**
 * Holds built-in handlers until a test lets them go. Handlers poll a flag rather than await a
 * promise the test resolves: a promise settled from the test's context cannot wake code that
 * runs in the queue consumer's.
 */
export class Latch {
  private readonly open = new Set<string>();
  readonly entered = new Set<string>();

  async hold(key: string, signal?: AbortSignal): Promise<void> {
    this.entered.add(key);
    while (!this.open.has(key) && !signal?.aborted) await sleep(10);
  }

  release(key: string): void {
    this.open.add(key);
  }
}

/** Registers a handler that runs until its task ends elsewhere, yielding every slice so the consumer stays free. */
export function registerHeldHandler(type: string): void {
  registerHandler({
    type,
    run: async (ctx) => {
      for (;;) {
        if (ctx.shouldYield() || ctx.signal.aborted) return ctx.yield({});
        await sleep(10);
      }
    },
  });
}

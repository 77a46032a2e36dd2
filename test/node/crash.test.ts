import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, freePort, startDevServer } from "./dev-server";

const ADMIN = "crash-admin-token";
const TASKS = 200;
const LIMIT = 6;
/** Short, so that a message lost in the crash is sent again within the test (the default is 5 min). */
const WATCHDOG_MS = 3000;
/** Longer than the setup takes, so that the stalled first attempt is still current at the kill. */
const LEASE_SECONDS = 60;
/** How long after the restart every task must have finished (about 30 s here on a loaded machine). */
const FINISH_WITHIN_MS = 120_000;

type Json = Record<string, unknown>;

interface Dispatch {
  taskId: string;
  attempt: number;
  url: string;
  token: string;
}

/**
 * A processor that, until released, takes each dispatch and never answers it: the consumer
 * waits on it, and the local queue holds every message sent meanwhile in memory until that
 * batch is done. Once released it completes every task it was sent, through the callbacks.
 */
function stallingProcessor() {
  let stalling = true;
  const received: Dispatch[] = [];
  const completions = new Map<number, number>();
  const complete = async (d: Dispatch) => {
    let status = 0;
    try {
      const res = await fetch(`${d.url}/complete`, {
        method: "POST",
        headers: { authorization: `Bearer ${d.token}`, "content-type": "application/json" },
        body: JSON.stringify({ outputs: { attempt: d.attempt } }),
      });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      // The service is down: the attempt ends by its lease and is dispatched again.
    }
    completions.set(status, (completions.get(status) ?? 0) + 1);
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { task: { task_id: string }; attempt: number; callback: { url: string; token: string } };
      const dispatch = { taskId: body.task.task_id, attempt: body.attempt, url: body.callback.url, token: body.callback.token };
      received.push(dispatch);
      if (stalling) return;
      res.writeHead(202).end("accepted");
      void complete(dispatch);
    });
  });
  return {
    server,
    received,
    completions,
    /** Completes what it was sent while it stalled, and everything sent from now on. */
    release: async () => {
      stalling = false;
      await Promise.all(received.map(complete));
    },
  };
}

/**
 * SPEC §5 Durability and Delivery watchdog: the whole runtime killed with SIGKILL while tasks are
 * in flight loses and duplicates nothing, and no task stays stuck afterwards. The local queue
 * keeps messages in memory, so the five sent while the consumer waited on the first dispatch die
 * with the process while their tasks are `queued`: without the watchdog they stay queued forever
 * and hold five of the six slots (all six, had the first one been lost too).
 */
describe("a hard crash with tasks in flight", { timeout: 300_000 }, () => {
  let dev: DevServer;
  let processor: ReturnType<typeof stallingProcessor>;
  let processorUrl = "";
  let apiKey = "";

  async function call(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const res = await fetch(`${dev.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Json) : {} };
  }

  /** Every task of the namespace, walked page by page: its id may appear once only. */
  async function allTasks(): Promise<{ task_id: string; status: string }[]> {
    const tasks: { task_id: string; status: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await call("GET", `/v1/tasks?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, apiKey);
      expect(page.status, JSON.stringify(page.json)).toBe(200);
      tasks.push(...(page.json.results as { task_id: string; status: string }[]));
      cursor = (page.json.pagination as { next_cursor: string | null }).next_cursor;
    } while (cursor);
    return tasks;
  }

  beforeAll(async () => {
    processor = stallingProcessor();
    const port = await freePort();
    await new Promise<void>((resolve) => processor.server.listen(port, "127.0.0.1", resolve));
    processorUrl = `http://127.0.0.1:${port}/run`;
    dev = await startDevServer({ adminToken: ADMIN, vars: { QUEUE_WATCHDOG_MS: String(WATCHDOG_MS) } });
  }, 180_000);

  afterAll(async () => {
    await dev?.dispose();
    await new Promise((resolve) => processor?.server.close(resolve));
  }, 60_000);

  it("keeps every accepted task once and finishes them all after SIGKILL and a restart", async () => {
    const ns = await call("POST", "/v1/namespaces", ADMIN, { namespace_name: "crash", settings: { max_concurrent_tasks: LIMIT, requests_per_second: 10_000 } });
    expect(ns.status, JSON.stringify(ns.json)).toBe(201);
    const key = await call("POST", "/v1/namespaces/crash/api-keys", ADMIN, { name: "crash test" });
    apiKey = key.json.api_key as string;
    const put = await call("PUT", "/v1/processors/crash_job", apiKey, { url: processorUrl, lease_seconds: LEASE_SECONDS });
    expect(put.status, JSON.stringify(put.json)).toBe(201);

    const accepted: string[] = [];
    const create = async (count: number) => {
      const wave = await Promise.all(
        Array.from({ length: count }, () => call("POST", "/v1/tasks", apiKey, { task_type: "crash_job" })),
      );
      for (const created of wave) {
        expect(created.status, JSON.stringify(created.json)).toBe(201);
        accepted.push(created.json.task_id as string);
      }
    };
    await create(1);
    const deadline = Date.now() + 30_000;
    while (processor.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // The consumer gives up on a dispatch after 15 s: the rest is created well within that.
    for (let n = 1; n < TASKS; n += 20) await create(Math.min(20, TASKS - n));
    // The first task is claimed and its dispatch stalls the consumer; the next five were
    // admitted and sent while it waited, so their messages sit in the queue's memory.
    const stats = await call("GET", "/v1/tasks/stats", apiKey);
    console.log(`before the kill: ${JSON.stringify(stats.json)}`);
    expect(stats.json).toMatchObject({ created: TASKS - LIMIT, queued: LIMIT - 1, processing: 1 });
    expect(processor.received).toHaveLength(1);
    await dev.kill();
    const dispatchedBeforeKill = processor.received.length;

    await dev.start();
    const restartedAt = Date.now();
    await processor.release();

    const unfinished = async () => {
      const { json } = await call("GET", "/v1/tasks/stats", apiKey);
      return Number(json.created) + Number(json.queued) + Number(json.processing);
    };
    while ((await unfinished()) > 0 && Date.now() - restartedAt < FINISH_WITHIN_MS) await new Promise((r) => setTimeout(r, 500));
    const secondsToFinish = (Date.now() - restartedAt) / 1000;
    const tasks = await allTasks();
    const ids = tasks.map((t) => t.task_id);
    const counts = {
      accepted: accepted.length,
      present: accepted.filter((id) => ids.includes(id)).length,
      listed: ids.length,
      distinct: new Set(ids).size,
      finished: tasks.filter((t) => t.status === "completed").length,
      stuck: tasks.filter((t) => !["completed", "failed", "cancelled"].includes(t.status)).length,
      by_status: Object.fromEntries(["created", "queued", "processing", "completed", "failed", "cancelled"].map((s) => [s, tasks.filter((t) => t.status === s).length])),
      dispatched_before_kill: dispatchedBeforeKill,
      completions: Object.fromEntries(processor.completions),
      seconds_to_finish: secondsToFinish,
    };
    console.log(`crash counts: ${JSON.stringify(counts)}`);
    expect(counts).toMatchObject({ accepted: TASKS, present: TASKS, listed: TASKS, distinct: TASKS, finished: TASKS, stuck: 0 });
    // Each task was completed by exactly one report that the service took.
    expect(processor.completions.get(200)).toBe(TASKS);
  });
});

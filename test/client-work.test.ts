import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createClient, type FetchLike } from "../src/client";
import { call, eventually, getTask, ORIGIN, sleep, tenant, type Tenant, waitForStatus } from "./helpers";

/** The Worker's own fetch handler, as the client's fetch, counting requests by path. */
function service() {
  const paths: string[] = [];
  const fetch: FetchLike = (input, init) => {
    const request = new Request(input, init);
    paths.push(new URL(request.url).pathname);
    return exports.default.fetch(request);
  };
  return { fetch, paths };
}

const clientFor = (t: Tenant, fetch: FetchLike) => createClient({ baseUrl: ORIGIN, apiKey: t.key, fetch, retryBaseDelayMs: 5, retryMaxDelayMs: 50 });

async function pulled(t: Tenant, taskType: string, leaseSeconds?: number) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { mode: "pull", ...(leaseSeconds ? { lease_seconds: leaseSeconds } : {}) } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

async function createBatch(t: Tenant, tasks: unknown[]): Promise<string[]> {
  const res = await call<{ tasks: { task_id: string }[] }>("/v1/tasks/batch", { token: t.key, body: { tasks } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.tasks.map((task) => task.task_id);
}

describe("client.work", () => {
  it("runs every task at most `concurrency` at a time and reports progress, logs and results in batches", async () => {
    const t = await tenant();
    await pulled(t, "cw_echo");
    const ids = await createBatch(t, Array.from({ length: 12 }, (_, i) => ({ task_type: "cw_echo", inputs: { i } })));
    const { fetch, paths } = service();
    const stop = new AbortController();
    let active = 0;
    let most = 0;
    const worker = clientFor(t, fetch).work(
      "cw_echo",
      async (ctx) => {
        most = Math.max(most, ++active);
        ctx.progress({ percent: 50, message: "half" });
        ctx.log(`working on ${String(ctx.task.inputs.i)}`);
        await sleep(20);
        active--;
        return { doubled: Number(ctx.task.inputs.i) * 2 };
      },
      { concurrency: 4, signal: stop.signal, waitSeconds: 1 },
    );
    for (const id of ids) await waitForStatus(t, id, "completed");
    stop.abort();
    await worker;
    expect(most).toBeLessThanOrEqual(4);
    for (const [i, id] of ids.entries()) {
      const task = await getTask(t, id);
      expect(task.outputs).toEqual({ doubled: i * 2 });
      expect(task.progress).toMatchObject({ percent: 100, message: "half" });
    }
    const logs = await call<{ results: { message: string }[] }>(`/v1/tasks/${ids[3]}/logs`, { token: t.key });
    expect(logs.body.results.map((l) => l.message)).toContain("working on 3");
    // 12 tasks × 3 reports went out in fewer requests than reports.
    const callbacks = paths.filter((p) => p === "/v1/callbacks").length;
    expect(callbacks).toBeGreaterThan(0);
    expect(callbacks).toBeLessThan(36);
  });

  it("keeps a second report call out while the first is, and never sends an attempt's later report before its earlier one is answered", async () => {
    const t = await tenant();
    await pulled(t, "cw_pipe");
    const [slowId, fastId] = await createBatch(t, [{ task_type: "cw_pipe", inputs: { slow: true } }, { task_type: "cw_pipe", inputs: {} }]);
    // Report calls are held until the test lets them through; lease answers tell which token is whose.
    const tokenOf = new Map<string, string>();
    const calls: { types: string[]; tokens: string[] }[] = [];
    let answer: () => void = () => undefined;
    const answering = new Promise<void>((resolve) => (answer = resolve));
    const fetch: FetchLike = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).pathname === "/v1/callbacks") {
        const { reports } = (await request.clone().json()) as { reports: { token: string; type: string }[] };
        calls.push({ types: reports.map((r) => r.type), tokens: reports.map((r) => r.token) });
        await answering;
        return exports.default.fetch(request);
      }
      const response = await exports.default.fetch(request);
      if (request.url.endsWith("/lease")) {
        const { leases } = (await response.clone().json()) as { leases: { task: { task_id: string }; callback: { token: string } }[] };
        for (const lease of leases) tokenOf.set(lease.task.task_id, lease.callback.token);
      }
      return response;
    };
    let releaseSlow: () => void = () => undefined;
    const slowMayEnd = new Promise<void>((resolve) => (releaseSlow = resolve));
    let releaseFast: () => void = () => undefined;
    const fastMayEnd = new Promise<void>((resolve) => (releaseFast = resolve));
    const stop = new AbortController();
    const worker = clientFor(t, fetch).work(
      "cw_pipe",
      async (ctx) => {
        if (ctx.task.inputs.slow !== true) {
          await fastMayEnd;
          return { fast: true };
        }
        ctx.progress({ percent: 50 });
        await slowMayEnd;
        return { slow: true };
      },
      { concurrency: 2, signal: stop.signal, waitSeconds: 1 },
    );
    // The first call carries the slow task's progress, and is held.
    await eventually(async () => (calls.length === 1 ? true : undefined), 10_000, "the first report call");
    const slowToken = tokenOf.get(slowId ?? "");
    expect(calls[0]).toEqual({ types: ["progress"], tokens: [slowToken] });
    // Both results are ready: the fast task's goes out in a second call while the first is held;
    // the slow task's waits behind its own progress.
    releaseSlow();
    releaseFast();
    await eventually(async () => (calls.length === 2 ? true : undefined), 10_000, "a second report call while the first is out");
    expect(calls[1]).toEqual({ types: ["complete"], tokens: [tokenOf.get(fastId ?? "")] });
    answer();
    await waitForStatus(t, slowId ?? "", "completed");
    await waitForStatus(t, fastId ?? "", "completed");
    stop.abort();
    await worker;
    expect(calls).toHaveLength(3);
    expect(calls[2]).toEqual({ types: ["complete"], tokens: [slowToken] });
    expect((await getTask(t, slowId ?? "")).outputs).toEqual({ slow: true });
  });

  it("fails the attempt with the thrown error's code, retried unless it says retryable: false", async () => {
    const t = await tenant();
    await pulled(t, "cw_fail");
    const [id] = await createBatch(t, [{ task_type: "cw_fail" }]);
    const stop = new AbortController();
    const worker = clientFor(t, service().fetch).work(
      "cw_fail",
      async () => {
        throw Object.assign(new Error("this input can never work"), { code: "bad_input", retryable: false });
      },
      { signal: stop.signal, waitSeconds: 1 },
    );
    const failed = await waitForStatus(t, id ?? "", "failed");
    stop.abort();
    await worker;
    expect(failed.error).toMatchObject({ code: "bad_input", message: "this input can never work", retryable: false });
  });

  it("aborts the handler of a cancelled task, and its late result changes nothing", async () => {
    const t = await tenant();
    await pulled(t, "cw_cancel");
    const [id] = await createBatch(t, [{ task_type: "cw_cancel" }]);
    const stop = new AbortController();
    let started = false;
    let aborted = false;
    const worker = clientFor(t, service().fetch).work(
      "cw_cancel",
      async (ctx) => {
        started = true;
        while (!ctx.signal.aborted) {
          ctx.progress({ message: "still here" });
          await sleep(30);
        }
        aborted = true;
        return { late: true };
      },
      { signal: stop.signal, waitSeconds: 1 },
    );
    await eventually(async () => (started ? true : undefined));
    await call(`/v1/tasks/${id}/cancel`, { token: t.key, body: {} });
    await eventually(async () => (aborted ? true : undefined));
    stop.abort();
    await worker;
    expect(await getTask(t, id ?? "")).toMatchObject({ status: "cancelled", outputs: null });
  });

  it("renews the lease of a long handler that reports nothing", async () => {
    const t = await tenant();
    await pulled(t, "cw_long", 5);
    const [id] = await createBatch(t, [{ task_type: "cw_long" }]);
    const stop = new AbortController();
    const worker = clientFor(t, service().fetch).work(
      "cw_long",
      async () => {
        await sleep(7_000); // longer than the 5 s lease
        return { slow: true };
      },
      { signal: stop.signal, waitSeconds: 1 },
    );
    // Ends completed, or shows the lease lost (failed, or retried as attempt 2).
    const final = await eventually(async () => {
      const task = await getTask(t, id ?? "");
      return task.status === "completed" || task.status === "failed" || task.attempt > 1 ? task : undefined;
    }, 15_000);
    stop.abort();
    await worker;
    expect(final).toMatchObject({ status: "completed", attempt: 1, outputs: { slow: true } });
  }, 20_000);

  it("stops on abort: running handlers are aborted, their attempts retried, and work() resolves", async () => {
    const t = await tenant();
    await pulled(t, "cw_stop");
    const [id] = await createBatch(t, [{ task_type: "cw_stop" }]);
    const stop = new AbortController();
    let started = false;
    const worker = clientFor(t, service().fetch).work(
      "cw_stop",
      async (ctx) => {
        started = true;
        await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("stopping")), { once: true }));
      },
      { signal: stop.signal, waitSeconds: 30 },
    );
    await eventually(async () => (started ? true : undefined));
    stop.abort();
    await worker;
    expect(await getTask(t, id ?? "")).toMatchObject({ status: "queued", attempt: 2, error: { code: "worker_stopped" } });
  });
});

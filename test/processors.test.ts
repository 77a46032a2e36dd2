import { afterEach, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { type LogPage, call, createTask, eventually, tenant, type Tenant, waitForStatus } from "./helpers";
import { advance, taskEvents } from "./inspect";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";

let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => processor?.restore());

async function withProcessor(t: Tenant, taskType: string, body: Record<string, unknown> = {}) {
  const res = await call(`/v1/processors/${taskType}`, { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, ...body } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { secret: string; lease_seconds: number };
}

const callback = (path: string, token: string | null, body: unknown) =>
  call(path, { token, body, method: "POST" });

describe("processor registration", () => {
  it("creates a processor with a secret shown once, updates it without one, lists and deletes it", async () => {
    const t = await tenant();
    const created = await withProcessor(t, "gpu_embed");
    expect(created).toMatchObject({ task_type: "gpu_embed", url: PROCESSOR_URL, lease_seconds: 300 });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const updated = await call("/v1/processors/gpu_embed", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL, lease_seconds: 60 } });
    expect(updated.status).toBe(200);
    expect(updated.body.lease_seconds).toBe(60);
    expect(updated.body).not.toHaveProperty("secret");
    const list = await call("/v1/processors", { token: t.key });
    expect(list.body.results).toHaveLength(1);
    expect(list.body.pagination).toEqual({ limit: 20, next_cursor: null });
    expect(JSON.stringify(list.body)).not.toContain("whsec_");
    expect((await call("/v1/processors/gpu_embed", { token: t.key })).body.url).toBe(PROCESSOR_URL);
    expect((await call("/v1/processors/gpu_embed", { token: t.key, method: "DELETE" })).status).toBe(200);
    expect((await call("/v1/processors/gpu_embed", { token: t.key })).status).toBe(404);
    expect((await call("/v1/processors/gpu_embed", { token: t.key, method: "DELETE" })).status).toBe(404);
  });

  it("validates the task type, the lease and unknown fields", async () => {
    const t = await tenant();
    for (const [path, body] of [
      ["/v1/processors/Bad", { url: PROCESSOR_URL }],
      ["/v1/processors/ok_type", { url: PROCESSOR_URL, lease_seconds: 4 }],
      ["/v1/processors/ok_type", { url: PROCESSOR_URL, lease_seconds: 3601 }],
      ["/v1/processors/ok_type", { url: PROCESSOR_URL, secret: "mine" }],
      ["/v1/processors/ok_type", { url: "ftp://processor.test/" }],
      ["/v1/processors/ok_type", { url: "not a url" }],
    ] as const) {
      const res = await call(path, { token: t.key, method: "PUT", body });
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
  });

  it("lets a task of a processor's type be created, and another namespace's processor does not count", async () => {
    const a = await tenant();
    const b = await tenant();
    processor = fakeProcessor();
    await withProcessor(a, "only_a");
    expect((await call("/v1/tasks", { token: a.key, body: { task_type: "only_a" } })).status).toBe(201);
    expect((await call("/v1/tasks", { token: b.key, body: { task_type: "only_a" } })).status).toBe(422);
  });
});

describe("dispatch and callbacks", () => {
  it("dispatches a signed request and completes through the callbacks", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    const { secret } = await withProcessor(t, "remote_job");
    const task = await createTask(t, { task_type: "remote_job", inputs: { url: "s3://x" } });
    const dispatch = await eventually(async () => processor?.last(task.task_id), 10_000, "a dispatch");

    // Any Standard Webhooks library verifies it.
    const verified = new Webhook(secret.slice("whsec_".length)).verify(dispatch.raw, Object.fromEntries(dispatch.headers)) as typeof dispatch.body;
    expect(verified.type).toBe("task.dispatch");
    expect(verified.task).toMatchObject({ task_id: task.task_id, status: "processing", inputs: { url: "s3://x" } });
    expect(verified.attempt).toBe(1);
    expect(verified.callback.url).toBe(`http://edge.test/v1/tasks/${task.task_id}/callback`);
    expect(dispatch.headers.get("webhook-id")).toBeTruthy();

    const { url, token } = dispatch.body.callback;
    const progress = await callback(`${new URL(url).pathname}/progress`, token, { percent: 40, message: "working", processed: 4, total: 10 });
    expect(progress.status).toBe(200);
    expect(progress.body.status).toBe("processing");
    expect(Date.parse(progress.body.lease_expires_at)).toBeGreaterThan(Date.now());
    const logs = await callback(`${new URL(url).pathname}/logs`, token, { lines: [{ message: "step 1" }, { level: "warn", message: "slow disk" }] });
    expect(logs.status).toBe(200);
    const done = await callback(`${new URL(url).pathname}/complete`, token, { outputs: { vectors: 10 } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "completed", outputs: { vectors: 10 }, progress: { percent: 100, message: "working", processed: 4, total: 10 } }); // SPEC §5: completed means 100 %

    const again = await callback(`${new URL(url).pathname}/complete`, token, { outputs: { vectors: 11 } });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ type: "conflict", details: { status: "completed" } });
    expect((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.outputs).toEqual({ vectors: 10 });

    const lines = (await call(`/v1/tasks/${task.task_id}/logs`, { token: t.key })).body.results;
    expect(lines.map((l: { message: string }) => l.message)).toEqual(expect.arrayContaining(["step 1", "slow disk"]));
    expect(lines.find((l: { message: string }) => l.message === "slow disk").level).toBe("warn");
  });

  it("retries an attempt whose processor answers 500, then fails it at max_attempts", async () => {
    const t = await tenant();
    processor = fakeProcessor(() => new Response("boom", { status: 500 }));
    await withProcessor(t, "broken_job");
    const task = await createTask(t, { task_type: "broken_job", max_attempts: 2 });
    const retried = await eventually(async () => {
      const current = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
      return current.attempt === 2 && current.status === "queued" ? current : undefined;
    });
    expect(retried.error).toMatchObject({ code: "dispatch_failed", retryable: true });
    await advance(t, 10_000);
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.attempt).toBe(2);
    expect(failed.error).toMatchObject({ code: "dispatch_failed", message: "processor answered 500" });
    expect(processor.dispatched.filter((d) => d.body.task.task_id === task.task_id)).toHaveLength(2);
  });

  it("refuses missing, unknown, foreign and stale callback tokens", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await withProcessor(t, "fenced_job", { lease_seconds: 5 });
    const task = await createTask(t, { task_type: "fenced_job" });
    const first = await eventually(async () => processor?.last(task.task_id));
    const base = `/v1/tasks/${task.task_id}/callback`;

    expect((await callback(`${base}/progress`, null, {})).status).toBe(401);
    expect((await callback(`${base}/progress`, "garbage", {})).status).toBe(401);
    const forged = `${t.namespaceId}.${"A".repeat(43)}`;
    expect((await callback(`${base}/progress`, forged, {})).status).toBe(401);
    expect((await callback(`${base}/progress`, t.key, {})).status).toBe(401);

    // A token is good only for its own task.
    const other = await createTask(t, { task_type: "fenced_job" });
    const otherDispatch = await eventually(async () => processor?.last(other.task_id));
    expect((await callback(`${base}/progress`, otherDispatch.body.callback.token, {})).status).toBe(401);

    // The lease runs out: attempt 2 begins, and attempt 1's token is stale.
    await advance(t, 6_000);
    await eventually(async () => ((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.attempt === 2 ? true : undefined));
    const stale = await callback(`${base}/complete`, first.body.callback.token, { outputs: {} });
    expect(stale.status).toBe(409);
    expect(stale.body.error.details.status).toBeDefined();
    await advance(t, 10_000);
    const second = await eventually(async () => {
      const d = processor?.last(task.task_id);
      return d && d.body.attempt === 2 ? d : undefined;
    });
    expect(second.body.callback.token).not.toBe(first.body.callback.token);
    const ok = await callback(`${base}/complete`, second.body.callback.token, { outputs: { attempt: 2 } });
    expect(ok.status).toBe(200);
    expect(ok.body.attempt).toBe(2);
    await call(`/v1/tasks/${other.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("validates callback bodies", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await withProcessor(t, "strict_job");
    const task = await createTask(t, { task_type: "strict_job" });
    const { token } = (await eventually(async () => processor?.last(task.task_id))).body.callback;
    const base = `/v1/tasks/${task.task_id}/callback`;
    expect((await callback(`${base}/progress`, token, { percent: 101 })).status).toBe(422);
    expect((await callback(`${base}/progress`, token, { status: "completed" })).status).toBe(422);
    expect((await callback(`${base}/logs`, token, { lines: Array.from({ length: 101 }, () => ({ message: "x" })) })).status).toBe(422);
    expect((await callback(`${base}/logs`, token, { lines: [{ level: "fatal", message: "x" }] })).status).toBe(422);
    expect((await callback(`${base}/fail`, token, { error: { message: "no code" } })).status).toBe(422);
    expect((await callback(`${base}/complete`, token, { outputs: { big: "x".repeat(1024 * 1024) } })).status).toBe(413);
    const failed = await callback(`${base}/fail`, token, { error: { code: "oom", message: "out of memory" }, retryable: false });
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({ status: "failed", error: { code: "oom", message: "out of memory", retryable: false } });
  });

  it("truncates long log lines and caps a task's log at 10 000 lines plus one notice", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await withProcessor(t, "chatty_job");
    const task = await createTask(t, { task_type: "chatty_job" });
    const { token } = (await eventually(async () => processor?.last(task.task_id))).body.callback;
    const base = `/v1/tasks/${task.task_id}/callback`;
    await callback(`${base}/logs`, token, { lines: [{ message: "é".repeat(10_000) }] });
    for (let i = 0; i < 101; i++) {
      const res = await callback(`${base}/logs`, token, { lines: Array.from({ length: 100 }, (_, j) => ({ message: `line ${i}.${j}` })) });
      expect(res.status).toBe(200);
    }
    const lines: { message: string }[] = [];
    let cursor: string | null = null;
    do {
      const page: LogPage = await call(`/v1/tasks/${task.task_id}/logs?limit=100${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      lines.push(...page.body.results);
      cursor = page.body.pagination.next_cursor;
    } while (cursor);
    expect(lines).toHaveLength(10_001);
    const long = lines.find((l) => l.message.startsWith("éé"));
    expect(new TextEncoder().encode(long?.message).byteLength).toBeLessThanOrEqual(8 * 1024);
    expect(lines.at(-1)?.message).toContain("further lines are dropped");
    await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
  });
});

describe("timeouts and leases", () => {
  it("fails a task that processes past the timeout, frees its slot, and refuses its late completion", async () => {
    const t = await tenant({ max_concurrent_tasks: 1, processing_timeout_seconds: 1800 });
    processor = fakeProcessor();
    await withProcessor(t, "slow_job", { lease_seconds: 3600 });
    const task = await createTask(t, { task_type: "slow_job" });
    const next = await createTask(t, { task_type: "slow_job" });
    const dispatch = await eventually(async () => processor?.last(task.task_id));
    expect(Date.parse(dispatch.body.timeout_at) - Date.parse(dispatch.body.task.started_at ?? "")).toBe(1800_000);
    expect((await call(`/v1/tasks/${next.task_id}`, { token: t.key })).body.status).toBe("created");

    await advance(t, 1800_000 + 1000);
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.error).toEqual({ code: "timeout", message: "processing took longer than 1800 s", retryable: false });
    expect(failed.attempt).toBe(1);
    await waitForStatus(t, next.task_id, "queued", "processing");

    const late = await callback(`/v1/tasks/${task.task_id}/callback/complete`, dispatch.body.callback.token, { outputs: {} });
    expect(late.status).toBe(409);
    expect(late.body.error.details.status).toBe("failed");
    expect((await taskEvents(t, task.task_id)).filter((e) => e.event_type === "task.completed")).toHaveLength(0);
    await call(`/v1/tasks/${next.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("retries an attempt whose lease expires, and fails with lease_expired at max_attempts", async () => {
    const t = await tenant();
    processor = fakeProcessor();
    await withProcessor(t, "silent_job", { lease_seconds: 30 });
    const task = await createTask(t, { task_type: "silent_job", max_attempts: 2 });
    const first = await eventually(async () => processor?.last(task.task_id));

    // A progress report renews the lease: 25 s later it has not expired.
    await advance(t, 25_000);
    expect((await callback(`/v1/tasks/${task.task_id}/callback/progress`, first.body.callback.token, { percent: 10 })).status).toBe(200);
    await advance(t, 25_000);
    expect((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body).toMatchObject({ status: "processing", attempt: 1 });

    await advance(t, 6_000);
    const retried = await eventually(async () => {
      const current = (await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body;
      return current.attempt === 2 ? current : undefined;
    });
    expect(retried.error).toMatchObject({ code: "lease_expired", retryable: true });
    await advance(t, 10_000);
    await eventually(async () => processor?.dispatched.find((d) => d.body.task.task_id === task.task_id && d.body.attempt === 2));
    await advance(t, 31_000);
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.attempt).toBe(2);
    expect(failed.error).toMatchObject({ code: "lease_expired" });
    const statuses = (await taskEvents(t, task.task_id)).map((e) => e.event_type);
    expect(statuses).toEqual(["task.created", "task.queued", "task.processing", "task.progress", "task.queued", "task.processing", "task.failed"]);
  });
});

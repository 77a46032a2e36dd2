import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, describe, expect, it } from "vitest";
import { runBuiltin, UNEXPECTED_ERROR_MESSAGE } from "../src/consumer/builtin";
import { type NamespaceStub, namespaceStub } from "../src/namespace/stub";
import { runRetention } from "../src/db/retention";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import type { JsonObject, Task } from "../src/tasks/model";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { call, createTask, eventually, ORIGIN, sleep, stub, tenant, type Tenant, waitForStatus } from "./helpers";

registerHandler({ type: "iso_echo", run: async (ctx) => ({ echo: ctx.task.inputs }) });
registerHandler({
  type: "iso_sql",
  run: async (ctx) => {
    await ctx.env.DB.prepare("SELECT secret_column FROM no_such_table WHERE namespace_id = 'x'").run();
  },
});
/** Never reports, never returns, ignores its signal: what a handler stuck in a loop looks like. */
let stuckRunning = true;
registerHandler({
  type: "iso_stuck",
  run: async () => {
    while (stuckRunning) await sleep(20);
  },
});
/** Takes dispatches to processor.test, so a task of a processor type holds its slot without a consumer. */
const processor = fakeProcessor();
afterAll(() => {
  stuckRunning = false;
  processor.restore();
});

const DATA_PLANE_TYPES = ["object_create", "batch_import", "index_rebuild", "clustering", "taxonomy_apply", "model_tuning"];

/** The internal create the data plane itself uses: below POST /v1/tasks and its 422. */
async function craft(t: Tenant, taskType: string, inputs: JsonObject): Promise<Task> {
  const created = await namespaceStub(env, t.namespaceId).createTask({ task_type: taskType, inputs }, ORIGIN);
  if (!created.ok) throw new Error(JSON.stringify(created.error));
  return created.value;
}

async function bucketOf(t: Tenant, name: string): Promise<{ bucket_id: string }> {
  const res = await call("/v1/buckets", { token: t.key, body: { bucket_name: name } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function importBatch(t: Tenant, bucketId: string, contents: string[]): Promise<Task> {
  const res = await call(`/v1/buckets/${bucketId}/objects/batch`, { token: t.key, body: { objects: contents.map((content) => ({ content })) } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.task;
}

const stagedRows = async (stagingId: string): Promise<number> =>
  (await env.DB.prepare("SELECT COUNT(*) AS n FROM batch_staging WHERE staging_id = ?").bind(stagingId).first<number>("n")) ?? 0;

const stagingOf = (task: Task): string => String(task.inputs.staging_id);

/**
 * A namespace whose one slot a processor's task takes, so that its next task waits `created`.
 * (A held built-in handler would hold the local queue's one consumer, and every test with it.)
 */
async function blockedTenant(): Promise<{ t: Tenant; release: () => Promise<void> }> {
  const t = await tenant({ max_concurrent_tasks: 1 });
  const registered = await call("/v1/processors/iso_remote", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
  expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  const blocker = await createTask(t, { task_type: "iso_remote" });
  await waitForStatus(t, blocker.task_id, "processing");
  return {
    t,
    release: async () => {
      await call(`/v1/tasks/${blocker.task_id}/cancel`, { token: t.key, method: "POST" });
    },
  };
}

describe("a hostile batch import", () => {
  it("fails staging_invalid at once when its staging is shorter than its count, while another namespace's work goes on", async () => {
    const a = await tenant();
    const b = await tenant();
    const bucket = await bucketOf(a, "short");
    // Staging of one object (an import's, whose task has not bound it yet), named with count 2.
    await env.DB.prepare("INSERT INTO batch_staging (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms) VALUES (?, NULL, 'stg_isoshort', 0, 0, ?, ?)")
      .bind(a.namespaceId, JSON.stringify([{ content: "x" }]), Date.now())
      .run();
    const crafted = await craft(a, "batch_import", { bucket_id: bucket.bucket_id, staging_id: "stg_isoshort", count: 2 });
    const ordinary = await createTask(b, { task_type: "iso_echo", inputs: { n: 1 } });
    expect((await waitForStatus(b, ordinary.task_id, "completed")).outputs).toEqual({ echo: { n: 1 } });
    const failed = await waitForStatus(a, crafted.task_id, "failed", "completed", "cancelled");
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "staging_invalid", retryable: false });
    expect(failed.attempt).toBe(1);
    await eventually(async () => ((await stagedRows("stg_isoshort")) === 0 ? true : undefined), 10_000, "the staging to go");
  });

  it("replaying the reported attack (stage one, cancel, import two) ends failed, and the service carries on", async () => {
    const a = await tenant();
    const b = await tenant();
    const bucket = await bucketOf(a, "attack");
    const staged = await importBatch(a, bucket.bucket_id, ["x"]);
    await call(`/v1/tasks/${staged.task_id}/cancel`, { token: a.key, method: "POST" });
    const crafted = await craft(a, "batch_import", { bucket_id: bucket.bucket_id, staging_id: stagingOf(staged), count: 2 });
    const ordinary = await createTask(b, { task_type: "iso_echo" });
    await waitForStatus(b, ordinary.task_id, "completed");
    const ended = await waitForStatus(a, crafted.task_id, "failed", "completed", "cancelled");
    expect(ended.status).toBe("failed");
    expect(["staging_missing", "staging_invalid"]).toContain(ended.error?.code);
    expect(ended.error?.retryable).toBe(false);
  });

  it("cannot read another namespace's staging, which stays for its own import", async () => {
    const { t: a, release } = await blockedTenant();
    const b = await tenant();
    const bucketA = await bucketOf(a, "victim");
    const bucketB = await bucketOf(b, "thief");
    const victim = await importBatch(a, bucketA.bucket_id, ["a's secret text"]);
    expect(victim.status).toBe("created");
    // The staging id is visible in A's task inputs; B names it from B's own namespace.
    const theft = await craft(b, "batch_import", { bucket_id: bucketB.bucket_id, staging_id: stagingOf(victim), count: 1 });
    const refused = await waitForStatus(b, theft.task_id, "failed", "completed");
    expect(refused.error).toMatchObject({ code: "staging_missing", retryable: false });
    const stolen = await call(`/v1/buckets/${bucketB.bucket_id}/objects`, { token: b.key });
    expect(stolen.body.results).toEqual([]);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM objects WHERE namespace_id = ?").bind(b.namespaceId).first("n")).toBe(0);
    expect(await stagedRows(stagingOf(victim))).toBe(1);
    // Nor staging of A's that no task holds yet (a request between staging and creating its task).
    await env.DB.prepare("INSERT INTO batch_staging (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms) VALUES (?, NULL, 'stg_isounbound', 0, 0, ?, ?)")
      .bind(a.namespaceId, JSON.stringify([{ content: "a's unbound text" }]), Date.now())
      .run();
    const adoption = await craft(b, "batch_import", { bucket_id: bucketB.bucket_id, staging_id: "stg_isounbound", count: 1 });
    expect((await waitForStatus(b, adoption.task_id, "failed", "completed")).error).toMatchObject({ code: "staging_missing" });
    expect(await env.DB.prepare("SELECT namespace_id, task_id FROM batch_staging WHERE staging_id = 'stg_isounbound'").first()).toEqual({ namespace_id: a.namespaceId, task_id: null });

    await release();
    const done = await waitForStatus(a, victim.task_id, "completed", "failed");
    expect(done.outputs).toMatchObject({ objects_created: 1 });
    const listed = await call(`/v1/buckets/${bucketA.bucket_id}/objects`, { token: a.key });
    const object = await call(`/v1/buckets/${bucketA.bucket_id}/objects/${listed.body.results[0].object_id}`, { token: a.key });
    expect(object.body.content).toBe("a's secret text");
  });

  it("makes objects whose ids no other namespace's import can reach", async () => {
    const a = await tenant();
    const b = await tenant();
    const made: { t: Tenant; bucketId: string; objectId: string }[] = [];
    // The same staging id and index in two namespaces, one after the other: ids once derived
    // from the staging alone were the same, and B's import wrote over nothing but showed A's.
    for (const [t, content] of [[a, "a's text"], [b, "b's text"]] as const) {
      const bucket = await bucketOf(t, "same");
      await env.DB.prepare("INSERT INTO batch_staging (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms) VALUES (?, NULL, 'stg_isosame', 0, 0, ?, ?)")
        .bind(t.namespaceId, JSON.stringify([{ content }]), Date.now())
        .run();
      const task = await craft(t, "batch_import", { bucket_id: bucket.bucket_id, staging_id: "stg_isosame", count: 1 });
      await waitForStatus(t, task.task_id, "completed");
      await eventually(async () => ((await stagedRows("stg_isosame")) === 0 ? true : undefined), 10_000, "the staging to go");
      const listed = await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: t.key });
      expect(listed.body.results).toHaveLength(1);
      made.push({ t, bucketId: bucket.bucket_id, objectId: listed.body.results[0].object_id });
    }
    expect(made[0]?.objectId).not.toBe(made[1]?.objectId);
    for (const [i, content] of ["a's text", "b's text"].entries()) {
      const m = made[i];
      if (!m) throw new Error("missing");
      expect((await call(`/v1/buckets/${m.bucketId}/objects/${m.objectId}`, { token: m.t.key })).body.content).toBe(content);
    }
  });

  it("a crafted task naming another namespace's object and collection touches nothing", async () => {
    const a = await tenant();
    const b = await tenant();
    const bucket = await bucketOf(a, "owned");
    const collection = await call("/v1/collections", { token: a.key, body: { collection_name: "owned", source_bucket_ids: [bucket.bucket_id] } });
    const object = await call(`/v1/buckets/${bucket.bucket_id}/objects`, { token: a.key, body: { content: "a's object" } });
    await waitForStatus(a, object.body.task_ids[0], "completed");
    const crafted = await craft(b, "object_create", { object_id: object.body.object_id, collection_id: collection.body.collection_id });
    const failed = await waitForStatus(b, crafted.task_id, "failed", "completed");
    expect(failed.error).toMatchObject({ code: "object_not_found", retryable: false });
    for (const taskType of ["index_rebuild", "clustering"]) {
      const inputs: JsonObject = taskType === "clustering" ? { collection_id: collection.body.collection_id, k: 2 } : { collection_id: collection.body.collection_id };
      const other = await waitForStatus(b, (await craft(b, taskType, inputs)).task_id, "failed", "completed");
      expect(other.error, taskType).toMatchObject({ code: "collection_not_found", retryable: false });
    }
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM documents WHERE namespace_id = ?").bind(b.namespaceId).first("n")).toBe(0);
  });
});

describe("staging outlives no import", () => {
  it("is removed when its import is cancelled before it ran", async () => {
    const { t, release } = await blockedTenant();
    const bucket = await bucketOf(t, "cancelled");
    const task = await importBatch(t, bucket.bucket_id, ["one", "two"]);
    expect(await stagedRows(stagingOf(task))).toBe(1);
    await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    await eventually(async () => ((await stagedRows(stagingOf(task))) === 0 ? true : undefined), 10_000, "the staging to go");
    await release();
  });

  it("is removed when its import fails", async () => {
    const { t, release } = await blockedTenant();
    const bucket = await bucketOf(t, "doomed");
    const task = await importBatch(t, bucket.bucket_id, ["one"]);
    expect((await call(`/v1/buckets/${bucket.bucket_id}`, { token: t.key, method: "DELETE" })).status).toBe(200);
    await release();
    const failed = await waitForStatus(t, task.task_id, "failed", "completed");
    expect(failed.error).toMatchObject({ code: "bucket_not_found", retryable: false });
    await eventually(async () => ((await stagedRows(stagingOf(task))) === 0 ? true : undefined), 10_000, "the staging to go");
  });

  it("is removed by the cron when left behind, and kept while its import may still run", async () => {
    const now = Date.parse("2027-03-01T00:00:00.000Z");
    const day = 86400_000;
    const record = (taskId: string, status: string) =>
      env.DB.prepare(
        `INSERT INTO task_records (task_id, namespace_id, seq, task_type, status, created_at, updated_at, expires_at, version, record)
         VALUES (?, 'ns_isocron', 1, 'batch_import', ?, 'x', 'x', NULL, 1, '{}')`,
      ).bind(taskId, status);
    const stage = (stagingId: string, taskId: string | null, createdMs: number) =>
      env.DB.prepare("INSERT INTO batch_staging (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms) VALUES ('ns_isocron', ?, ?, 0, 0, '[]', ?)").bind(taskId, stagingId, createdMs);
    await env.DB.batch([
      record("tsk_isocron_done", "failed"),
      record("tsk_isocron_live", "processing"),
      stage("stg_isocron_done", "tsk_isocron_done", now - 1000),
      stage("stg_isocron_live", "tsk_isocron_live", now - 1000),
      stage("stg_isocron_unbound", null, now - 1000),
      stage("stg_isocron_ancient", null, now - 31 * day),
    ]);
    const result = await runRetention(env, now);
    expect(result.staging).toBeGreaterThanOrEqual(2);
    const left = await env.DB.prepare("SELECT staging_id FROM batch_staging WHERE namespace_id = 'ns_isocron' ORDER BY staging_id").all<{ staging_id: string }>();
    expect(left.results.map((r) => r.staging_id)).toEqual(["stg_isocron_live", "stg_isocron_unbound"]);
  });
});

describe("the data-plane types through POST /v1/tasks", () => {
  it("are refused with 422 naming the operation to use, and no task is made", async () => {
    const t = await tenant();
    for (const taskType of DATA_PLANE_TYPES) {
      const res = await call("/v1/tasks", { token: t.key, body: { task_type: taskType, inputs: {} } });
      expect(res.status, taskType).toBe(422);
      expect(res.body.error.type).toBe("validation_error");
      expect(res.body.error.details).toMatchObject({ field: "task_type" });
      expect(res.body.error.message).toContain(res.body.error.details.operation);
      expect(res.body.error.details.operation).toMatch(/^POST \/v1\/(buckets|collections|models)\//);
    }
    const stats = (await call("/v1/tasks/stats", { token: t.key })).body;
    expect(stats.created + stats.queued + stats.processing).toBe(0);
  });

  it("are accepted when the namespace runs the type on its own processor", async () => {
    const t = await tenant();
    expect((await call("/v1/processors/clustering", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } })).status).toBe(201);
    const res = await call("/v1/tasks", { token: t.key, body: { task_type: "clustering", inputs: { anything: true } } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await waitForStatus(t, res.body.task_id, "processing");
    expect(processor.last(res.body.task_id)).toBeDefined();
    await call(`/v1/tasks/${res.body.task_id}/cancel`, { token: t.key, method: "POST" });
  });
});

describe("what a handler's failure tells the client", () => {
  it("an error carrying SQL becomes a generic message; the detail stays in the log", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "iso_sql", max_attempts: 1 });
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.error).toEqual({ code: "handler_error", message: UNEXPECTED_ERROR_MESSAGE, retryable: true });
    expect(JSON.stringify(failed)).not.toMatch(/no_such_table|secret_column|SQLITE/i);
  });
});

/** Swallows the namespace's queue sends, handing the messages to the test instead. */
async function captureSends(t: Tenant): Promise<TaskMessage[]> {
  const captured: TaskMessage[] = [];
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    instance.io.sendBatch = async (messages) => {
      captured.push(...messages.map((m) => m.body));
    };
  });
  return captured;
}

async function claimCaptured(t: Tenant, captured: TaskMessage[], taskId: string) {
  const message = await eventually(async () => captured.find((m) => m.task_id === taskId), 10_000, "the task's message");
  const claim = await namespaceStub(env, t.namespaceId).claim(message);
  if (!claim.claimed) throw new Error(claim.reason);
  return claim;
}

describe("the runner never waits on a stuck handler", () => {
  it("gives the attempt up once the handler overruns its slice, heartbeat or not", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const task = await createTask(t, { task_type: "iso_stuck" });
    const claim = await claimCaptured(t, captured, task.task_id);
    const stubFor = (): NamespaceStub => namespaceStub(env, t.namespaceId);
    // A lease of 0.3 s renewed every 0.1 s: the heartbeat alone would keep it alive forever.
    await runBuiltin(stubFor, claim, env, 0.3, 100, 300);
    const failed = await waitForStatus(t, task.task_id, "failed");
    expect(failed.error).toMatchObject({ code: "slice_overrun", retryable: false });
  });

  it("returns as soon as the heartbeat learns the task was cancelled", async () => {
    const t = await tenant();
    const captured = await captureSends(t);
    const task = await createTask(t, { task_type: "iso_stuck" });
    const claim = await claimCaptured(t, captured, task.task_id);
    const stubFor = (): NamespaceStub => namespaceStub(env, t.namespaceId);
    const running = runBuiltin(stubFor, claim, env, 0.3, 60_000, 60_000);
    await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    await running;
    expect((await waitForStatus(t, task.task_id, "cancelled")).error).toBeNull();
  });
});

import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { recordUpserts } from "../src/db/records";
import { sha256Hex } from "../src/ids";
import { runRetention } from "../src/db/retention";
import { registerHandler } from "../src/handlers/registry";
import type { NamespaceDO } from "../src/namespace/do";
import type { Task } from "../src/tasks/model";
import { type ApiResponse, call, createTask, eventually, stub, tenant, type Tenant, waitForStatus } from "./helpers";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { query } from "./inspect";
import { recordColumns } from "./record-columns";

registerHandler({ type: "rec_done", run: async (ctx) => ({ n: ctx.task.inputs.n ?? null }) });
registerHandler({ type: "rec_other", run: async () => ({}) });

const record = (taskId: string) =>
  env.DB.prepare("SELECT status, version, expires_at, record FROM task_records WHERE task_id = ?")
    .bind(taskId)
    .first<{ status: string; version: number; expires_at: number | null; record: string }>();

async function walk(t: Tenant, path: string, init: { method?: string; body?: unknown } = {}): Promise<Task[]> {
  const seen: Task[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const res: ApiResponse<{ results: Task[]; pagination: { next_cursor: string | null } }> = await call(`${path}${cursor ? `${sep}cursor=${cursor}` : ""}`, { token: t.key, ...init });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    seen.push(...res.body.results);
    cursor = res.body.pagination.next_cursor;
  } while (cursor);
  return seen;
}

describe("task records in D1", () => {
  it("mirrors every task, answers a finished one from D1 after it leaves the Durable Object", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "rec_done", inputs: { n: 7 } });
    const done = await waitForStatus(t, task.task_id, "completed");
    const stored = await eventually(async () => {
      const row = await record(task.task_id);
      return row?.status === "completed" ? row : undefined;
    });
    expect(JSON.parse(stored.record)).toEqual(done);
    expect(stored.expires_at).toBe(Date.parse(done.expires_at ?? ""));
    await eventually(async () => ((await query(t, "SELECT task_id FROM tasks WHERE task_id = ?", task.task_id)).length === 0 ? true : undefined), 5000, "eviction");
    const fromD1 = await call(`/v1/tasks/${task.task_id}`, { token: t.key });
    expect(fromD1.status).toBe(200);
    expect(fromD1.body).toEqual(done);
    const cancel = await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
    expect(cancel.body).toEqual(done);
    const logs = await call(`/v1/tasks/${task.task_id}/logs`, { token: t.key });
    expect(logs.body.results.at(-1).message).toContain("processing → completed");
    // Another namespace cannot read it from D1 either.
    const other = await tenant();
    expect((await call(`/v1/tasks/${task.task_id}`, { token: other.key })).status).toBe(404);
  });

  it("never moves a record backwards when an old flush is replayed", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "rec_done" });
    await waitForStatus(t, task.task_id, "completed");
    const latest = await eventually(async () => {
      const row = await record(task.task_id);
      return row?.status === "completed" ? row : undefined;
    });
    await env.DB.batch(recordUpserts(env.DB, t.namespaceId, [recordColumns(1, 1, null, { ...task, status: "created" })]));
    const after = await record(task.task_id);
    expect(after).toEqual(latest);
  });

  it("keeps records and their order through a D1 outage and a Durable Object restart", async () => {
    const t = await tenant();
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.d1Batch = async () => {
        throw new Error("D1 unavailable");
      };
    });
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await createTask(t, { task_type: "rec_done", inputs: { n: i } }));
    for (const task of tasks) await waitForStatus(t, task.task_id, "completed");
    expect((await record(tasks[0]!.task_id))).toBeNull();
    expect((await query(t, "SELECT COUNT(*) AS n FROM record_outbox"))[0]).toEqual({ n: 5 });
    await evictDurableObject(stub(t));
    const listed = await walk(t, "/v1/tasks?limit=2");
    expect(listed.map((x) => x.task_id)).toEqual(tasks.map((x) => x.task_id).reverse());
    expect(listed.every((x) => x.status === "completed")).toBe(true);
  });
});

describe("listing tasks", () => {
  it("walks 250 tasks with a cursor while more are created: no duplicate, no gap", async () => {
    const t = await tenant({ max_concurrent_tasks: 1000 });
    const initial = [];
    for (let i = 0; i < 250; i += 25) {
      initial.push(...(await Promise.all(Array.from({ length: 25 }, (_, j) => createTask(t, { task_type: "rec_done", inputs: { n: i + j } })))));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let page = 0;
    const extra: Promise<Task>[] = [];
    do {
      const res: ApiResponse<{ results: Task[]; pagination: { next_cursor: string | null } }> = await call(`/v1/tasks?limit=17${cursor ? `&cursor=${cursor}` : ""}`, { token: t.key });
      expect(res.status).toBe(200);
      seen.push(...res.body.results.map((x: Task) => x.task_id));
      cursor = res.body.pagination.next_cursor;
      for (let i = 0; i < 5; i++) extra.push(createTask(t, { task_type: "rec_done", inputs: { page } }));
      page++;
    } while (cursor);
    await Promise.all(extra);
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(new Set(initial.map((x) => x.task_id)));
    expect(page).toBe(Math.ceil(250 / 17));
  });

  it("filters by status (Mixpeek names too), task type, parent and creation time, and counts", async () => {
    const t = await tenant({ max_concurrent_tasks: 2 });
    const processor = fakeProcessor();
    await call("/v1/processors/rec_remote", { token: t.key, method: "PUT", body: { url: PROCESSOR_URL } });
    const held = [await createTask(t, { task_type: "rec_remote" }), await createTask(t, { task_type: "rec_remote" })];
    const waiting = await createTask(t, { task_type: "rec_done" });
    const parent = held[0]!;
    const child = await createTask(t, { task_type: "rec_other", parent_task_id: parent.task_id });
    await eventually(async () => (processor.last(held[0]!.task_id) && processor.last(held[1]!.task_id) ? true : undefined));
    processor.restore();
    const cancelled = await createTask(t, { task_type: "rec_other" });
    await call(`/v1/tasks/${cancelled.task_id}/cancel`, { token: t.key, method: "POST" });

    const ids = (tasks: Task[]) => tasks.map((x) => x.task_id).sort();
    expect(ids(await walk(t, "/v1/tasks?status=processing"))).toEqual(ids(held));
    expect(ids(await walk(t, "/v1/tasks?status=IN_PROGRESS"))).toEqual(ids(held));
    expect(ids(await walk(t, "/v1/tasks?status=draft"))).toEqual(ids([waiting, child]));
    expect(ids(await walk(t, "/v1/tasks?status=Canceled,processing"))).toEqual(ids([...held, cancelled]));
    expect(ids(await walk(t, "/v1/tasks?task_type=rec_other,rec_remote"))).toEqual(ids([...held, child, cancelled]));
    expect(ids(await walk(t, "/v1/tasks?task_type=rec_other"))).toEqual(ids([child, cancelled]));
    expect(ids(await walk(t, "/v1/tasks?task_type=rec_other&status=created"))).toEqual(ids([child]));
    expect(ids(await walk(t, `/v1/tasks?parent_task_id=${parent.task_id}`))).toEqual(ids([child]));
    expect(ids(await walk(t, `/v1/tasks?created_after=${encodeURIComponent(waiting.created_at)}&created_before=${encodeURIComponent(cancelled.created_at)}`))).toEqual(
      ids([waiting, child, cancelled].filter((x) => x.created_at > waiting.created_at && x.created_at < cancelled.created_at)),
    );
    const mixpeek = await walk(t, "/v1/tasks/list", { method: "POST", body: { status: ["PENDING", "DRAFT"] } });
    expect(ids(mixpeek)).toEqual(ids([waiting, child]));
    const counted = await call("/v1/tasks?status=created&include_total=true&limit=1", { token: t.key });
    expect(counted.body.pagination).toMatchObject({ limit: 1, total: 2 });
    expect(counted.body.pagination.next_cursor).not.toBeNull();
    const uncounted = await call("/v1/tasks?limit=1", { token: t.key });
    expect(uncounted.body.pagination).not.toHaveProperty("total");

    // A live task on a page shows its current state, not the mirrored one.
    const live = (await walk(t, "/v1/tasks?status=created")).find((x) => x.task_id === waiting.task_id);
    expect(live?.queue_position).toBe(1);

    for (const bad of ["/v1/tasks?status=finished", "/v1/tasks?task_type=Bad-Type", "/v1/tasks?limit=0", "/v1/tasks?limit=101", "/v1/tasks?created_after=yesterday", "/v1/tasks?cursor=zzz"]) {
      const res = await call(bad, { token: t.key });
      expect(res.status, bad).toBe(422);
    }
    expect((await call("/v1/tasks/list", { token: t.key, body: { status: "processing", owner: "me" } })).status).toBe(422);
    for (const task of [...held, waiting, child]) await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
  });

  it("sorts by created_at or updated_at in either direction, and refuses a cursor of another order", async () => {
    const t = await tenant();
    const tasks = [];
    for (let i = 0; i < 6; i++) tasks.push(await createTask(t, { task_type: "rec_done", inputs: { n: i } }));
    for (const task of tasks) await waitForStatus(t, task.task_id, "completed");
    const created = tasks.map((x) => x.task_id);
    const asc = await walk(t, "/v1/tasks/list?limit=4", { method: "POST", body: { sort: { field: "created_at", direction: "asc" } } });
    expect(asc.map((x) => x.task_id)).toEqual(created);
    const desc = await walk(t, "/v1/tasks/list?limit=4", { method: "POST", body: {} });
    expect(desc.map((x) => x.task_id)).toEqual([...created].reverse());
    const byUpdate = await walk(t, "/v1/tasks/list?limit=4", { method: "POST", body: { sort: { field: "updated_at", direction: "desc" } } });
    const updated = byUpdate.map((x) => x.updated_at);
    expect(updated).toEqual([...updated].sort().reverse());
    expect(new Set(byUpdate.map((x) => x.task_id))).toEqual(new Set(created));

    const first = await call("/v1/tasks/list?limit=2", { token: t.key, body: { sort: { field: "updated_at" } } });
    const mismatched = await call(`/v1/tasks/list?limit=2&cursor=${first.body.pagination.next_cursor}`, { token: t.key, body: {} });
    expect(mismatched.status).toBe(422);
  });

  it("reads every list page through an index, never a scan or a sort", async () => {
    const plans: string[] = [];
    const explain = async (sql: string, ...params: unknown[]) => {
      const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...params).all<{ detail: string }>();
      plans.push(results.map((r) => r.detail).join(" | "));
    };
    const cols = "SELECT task_id, seq, updated_at, record FROM task_records";
    await explain(`${cols} WHERE namespace_id = ? AND (expires_at IS NULL OR expires_at > ?) AND seq < ? ORDER BY seq DESC LIMIT ?`, "ns", 0, 10, 21);
    await explain(`${cols} WHERE namespace_id = ? AND status = ? AND (expires_at IS NULL OR expires_at > ?) AND seq < ? ORDER BY seq DESC LIMIT ?`, "ns", "queued", 0, 10, 21);
    await explain(`${cols} WHERE namespace_id = ? AND task_type = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq DESC LIMIT ?`, "ns", "x", 0, 21);
    await explain(`${cols} WHERE namespace_id = ? AND (expires_at IS NULL OR expires_at > ?) AND parent_task_id = ? ORDER BY seq DESC LIMIT ?`, "ns", 0, "tsk_x", 21);
    await explain(`${cols} WHERE namespace_id = ? AND (expires_at IS NULL OR expires_at > ?) AND (updated_at, task_id) < (?, ?) ORDER BY updated_at DESC, task_id DESC LIMIT ?`, "ns", 0, "z", "z", 21);
    await explain(`${cols} WHERE namespace_id = ? AND status = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY updated_at ASC, task_id ASC LIMIT ?`, "ns", "failed", 0, 21);
    for (const plan of plans) {
      expect(plan).toMatch(/USING (COVERING )?INDEX/);
      expect(plan).not.toMatch(/TEMP B-TREE/);
    }
  });
});

describe("retention", () => {
  const day = 86400_000;

  async function seedRecord(namespaceId: string, taskId: string, expiresAt: number | null, status = expiresAt === null ? "processing" : "completed") {
    await env.DB.prepare(
      `INSERT INTO task_records (task_id, namespace_id, seq, task_type, status, parent_task_id, created_at, updated_at, expires_at, version, record)
       VALUES (?, ?, 1, 'rec_done', ?, NULL, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', ?, 1, '{}')`,
    ).bind(taskId, namespaceId, status, expiresAt).run();
  }

  it("purges records just past their expiry and keeps those just inside, and never a live task", async () => {
    const now = Date.parse("2026-12-01T00:00:00.000Z");
    await seedRecord("ns_ret1", "tsk_ret_expired", now - 1);
    await seedRecord("ns_ret1", "tsk_ret_exact", now);
    await seedRecord("ns_ret1", "tsk_ret_inside", now + 1);
    await seedRecord("ns_ret1", "tsk_ret_live", null);
    await env.DB.prepare("INSERT INTO task_logs (task_id, seq, namespace_id, attempt, level, message, timestamp, written_at) VALUES ('tsk_ret_live', 1, 'ns_ret1', 1, 'info', 'old', 'x', ?), ('tsk_ret_live', 2, 'ns_ret1', 1, 'info', 'new', 'x', ?)")
      .bind(now - 7 * day - 1, now - 7 * day + 1).run();
    const result = await runRetention(env, now);
    expect(result.complete).toBe(true);
    const left = (await env.DB.prepare("SELECT task_id FROM task_records WHERE namespace_id = 'ns_ret1' ORDER BY task_id").all<{ task_id: string }>()).results.map((r) => r.task_id);
    expect(left).toEqual(["tsk_ret_inside", "tsk_ret_live"]);
    const logs = (await env.DB.prepare("SELECT message FROM task_logs WHERE task_id = 'tsk_ret_live'").all<{ message: string }>()).results;
    expect(logs).toEqual([{ message: "new" }]);
    // Even a hundred years on, a live task stays.
    await runRetention(env, now + 36500 * day);
    expect(await env.DB.prepare("SELECT task_id FROM task_records WHERE task_id = 'tsk_ret_live'").first()).not.toBeNull();
  });

  it("finishes a purge larger than one run across several runs", async () => {
    const now = Date.parse("2027-06-01T00:00:00.000Z");
    const stmts = Array.from({ length: 23 }, (_, i) =>
      env.DB.prepare(
        `INSERT INTO task_records (task_id, namespace_id, seq, task_type, status, created_at, updated_at, expires_at, version, record)
         VALUES (?, 'ns_ret2', ?, 'rec_done', 'failed', 'x', 'x', ?, 1, '{}')`,
      ).bind(`tsk_bulk_${i}`, i, now - 1000),
    );
    await env.DB.batch(stmts);
    const runs = [];
    for (let i = 0; i < 20; i++) {
      const r = await runRetention(env, now, { batch: 4, statements: 6 });
      runs.push(r);
      if (r.complete) break;
    }
    expect(runs.length).toBeGreaterThan(1);
    // Three statements for records, one each for the other tables.
    expect(runs[0]).toMatchObject({ records: 12, complete: false });
    for (const r of runs) expect(r.records).toBeLessThanOrEqual(12);
    expect(runs.reduce((n, r) => n + r.records, 0)).toBeGreaterThanOrEqual(23);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM task_records WHERE namespace_id = 'ns_ret2'").first("n")).toBe(0);
  });

  it("answers a purged task with 404 that says records expire, and hides an expired one before the purge", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "rec_done" });
    await waitForStatus(t, task.task_id, "completed");
    await eventually(async () => ((await query(t, "SELECT task_id FROM tasks WHERE task_id = ?", task.task_id)).length === 0 ? true : undefined));
    await env.DB.prepare("UPDATE task_records SET expires_at = ? WHERE task_id = ?").bind(Date.now() - 1, task.task_id).run();
    const hidden = await call(`/v1/tasks/${task.task_id}`, { token: t.key });
    expect(hidden.status).toBe(404);
    expect(hidden.body.error.message).toMatch(/expire/);
    await runRetention(env, Date.now());
    const gone = await call(`/v1/tasks/${task.task_id}`, { token: t.key });
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toMatch(/records expire/);
  });
});

describe("Idempotency-Key", () => {
  it("replays the first response for the same request and creates nothing new", async () => {
    const t = await tenant();
    const body = { task_type: "rec_done", inputs: { n: 1 } };
    const first = await call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "order-1" } });
    expect(first.status).toBe(201);
    const again = await call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "order-1" } });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    await waitForStatus(t, first.body.task_id, "completed");
    expect(await walk(t, "/v1/tasks")).toHaveLength(1);
  });

  it("refuses the same key with a different body (422) and an over-long key", async () => {
    const t = await tenant();
    await call("/v1/tasks", { token: t.key, body: { task_type: "rec_done" }, headers: { "Idempotency-Key": "k" } });
    const different = await call("/v1/tasks", { token: t.key, body: { task_type: "rec_done", priority: 1 }, headers: { "Idempotency-Key": "k" } });
    expect(different.status).toBe(422);
    const long = await call("/v1/tasks", { token: t.key, body: { task_type: "rec_done" }, headers: { "Idempotency-Key": "x".repeat(256) } });
    expect(long.status).toBe(422);
  });

  it("lets exactly one of concurrent duplicates create, the others get 409 or the replay", async () => {
    const t = await tenant();
    const body = { task_type: "rec_done" };
    const results = await Promise.all(Array.from({ length: 6 }, () => call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "burst" } })));
    const created = results.filter((r) => r.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((r) => r.body.task_id)).size).toBe(1);
    for (const r of results) expect([201, 409]).toContain(r.status);
    await waitForStatus(t, created[0]!.body.task_id, "completed");
    expect(await walk(t, "/v1/tasks")).toHaveLength(1);
  });

  it("scopes keys to the namespace", async () => {
    const a = await tenant();
    const b = await tenant();
    const ra = await call("/v1/tasks", { token: a.key, body: { task_type: "rec_done" }, headers: { "Idempotency-Key": "shared" } });
    const rb = await call("/v1/tasks", { token: b.key, body: { task_type: "rec_done" }, headers: { "Idempotency-Key": "shared" } });
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    expect(rb.body.task_id).not.toBe(ra.body.task_id);
    expect(rb.body.namespace_id).toBe(b.namespaceId);
  });

  it("creates one task even when the first response was never recorded", async () => {
    const t = await tenant();
    const body = { task_type: "rec_done" };
    const first = await call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "lost" } });
    // The Worker died before storing the response: the key is pending and its lock has run out.
    await env.DB.prepare("UPDATE idempotency_keys SET state = 'pending', response_status = NULL, locked_until = 0 WHERE idempotency_key = 'lost'").run();
    const retry = await call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "lost" } });
    expect(retry.status).toBe(201);
    expect(retry.body.task_id).toBe(first.body.task_id);
  });

  it("answers 409 while the first request with the key is still running", async () => {
    const t = await tenant();
    const body = { task_type: "rec_done" };
    // The first request holds the key: pending, its lock still running.
    const hash = await sha256Hex(`POST /v1/tasks\n${JSON.stringify(body)}`);
    await env.DB.prepare(
      "INSERT INTO idempotency_keys (namespace_id, idempotency_key, request_hash, state, locked_until, expires_at) VALUES (?, 'busy', ?, 'pending', ?, ?)",
    ).bind(t.namespaceId, hash, Date.now() + 60_000, Date.now() + 86400_000).run();
    const res = await call("/v1/tasks", { token: t.key, body, headers: { "Idempotency-Key": "busy" } });
    expect(res.status).toBe(409);
    expect(res.body.error.type).toBe("conflict");
    expect(await walk(t, "/v1/tasks")).toHaveLength(0);
  });
});

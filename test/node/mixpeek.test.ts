import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "./dev-server";
import { type Callback, type HoldingProcessor, startHoldingProcessor } from "./holding-processor";
import { mixpeekResponseSchema, schemaErrors } from "./mixpeek-schema";

const ADMIN = "mixpeek-test-admin";
const WAIT = { timeout: 30_000, interval: 100 };

/** A copy of `value` without its `eta_seconds` fields: an estimate, not part of what a list returns. */
const withoutEta = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (key, field: unknown) => (key === "eta_seconds" ? undefined : field)));

type Json = Record<string, unknown>;

describe("the Mixpeek dialect, against wrangler dev, answers as Mixpeek's document says", { timeout: 120_000 }, () => {
  let dev: DevServer;
  let processor: HoldingProcessor;
  let apiKey = "";
  /** Every task of the namespace: its id, the inputs it was created with, and the Mixpeek status it ends the set-up in. */
  const tasks: { id: string; inputs: Json; status: string; outputs?: Json }[] = [];
  const seenStatuses = new Set<string>();

  async function call(method: string, path: string, options: { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}) {
    const token = options.token === undefined ? apiKey : options.token;
    const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
    let body = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(`${dev.url}${path}`, { method, headers, body });
    const text = await res.text();
    return { status: res.status, json: (text ? JSON.parse(text) : {}) as Json, text };
  }

  /** A Mixpeek call whose answer must match the schema Mixpeek's document gives it. */
  async function mixpeek(method: string, documentPath: string, path: string, options: Parameters<typeof call>[2] = {}) {
    const res = await call(method, `/mixpeek${path}`, options);
    expect(schemaErrors(mixpeekResponseSchema(method, documentPath, res.status), res.json), `${method} ${path} → ${res.status} ${res.text}`).toEqual([]);
    const results = res.json.results;
    for (const t of Array.isArray(results) ? results : res.json.task_id ? [res.json] : []) seenStatuses.add((t as Json).status as string);
    return res;
  }

  const getTask = (id: string) => mixpeek("GET", "/v1/tasks/{task_id}", `/v1/tasks/${id}`);
  const list = (query: string, body?: unknown) => mixpeek("POST", "/v1/tasks/list", `/v1/tasks/list${query}`, body === undefined ? {} : { body });

  async function create(inputs: Json): Promise<string> {
    const res = await call("POST", "/v1/tasks", { body: { task_type: "mp_work", inputs, max_attempts: 10 } });
    expect(res.status, res.text).toBe(201);
    return res.json.task_id as string;
  }

  async function report(cb: Callback, kind: "complete" | "fail", body: unknown) {
    const res = await fetch(`${cb.url}/${kind}`, {
      method: "POST",
      headers: { authorization: `Bearer ${cb.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  beforeAll(async () => {
    [dev, processor] = await Promise.all([startDevServer({ adminToken: ADMIN }), startHoldingProcessor({ refuse: (inputs) => inputs.dispatch === "refuse" })]);
    const ns = await call("POST", "/v1/namespaces", { token: ADMIN, body: { namespace_name: "mixpeek", settings: { max_concurrent_tasks: 2, requests_per_second: 10_000 } } });
    expect(ns.status, ns.text).toBe(201);
    const key = await call("POST", "/v1/namespaces/mixpeek/api-keys", { token: ADMIN, body: { name: "mixpeek test" } });
    expect(key.status, key.text).toBe(201);
    apiKey = key.json.api_key as string;
    const put = await call("PUT", "/v1/processors/mp_work", { body: { url: processor.url, lease_seconds: 3600 } });
    expect(put.status, put.text).toBe(201);

    // completed, with outputs of every JSON shape
    const completedInputs = { object: "s3://in/a.mp4", count: 3, ratio: 0.5, ok: true, missing: null };
    const completed = await create(completedInputs);
    const outputs = { ids: ["doc_1", "doc_2"], stats: { n: 2, mean: 0.25, none: null }, matrix: [[1, 2], [3]], mixed: [1, "two", null, { three: [3] }] };
    await report(await processor.dispatched(completed), "complete", { outputs });
    tasks.push({ id: completed, inputs: completedInputs, status: "COMPLETED", outputs });
    // failed, not retried
    const failedInputs = { config: { algorithm: "kmeans", k: 5, params: { seed: null, tags: ["a", "b"] } } };
    const failed = await create(failedInputs);
    await report(await processor.dispatched(failed), "fail", { error: { code: "bad_input", message: "the file is not a video" }, retryable: false });
    tasks.push({ id: failed, inputs: failedInputs, status: "FAILED" });
    // processing: dispatched, never reported
    const processingInputs = { list: [1, "two", null, [false]], "clé": "välue ✓" };
    const processing = await create(processingInputs);
    await processor.dispatched(processing);
    tasks.push({ id: processing, inputs: processingInputs, status: "PROCESSING" });
    // queued: its processor refuses every dispatch, so it waits between retries holding the second slot
    const queuedInputs = { dispatch: "refuse" };
    const queued = await create(queuedInputs);
    tasks.push({ id: queued, inputs: queuedInputs, status: "PENDING" });
    // created: both slots are taken
    for (const inputs of [{}, { n: 1 }, { s: "x".repeat(300) }]) tasks.push({ id: await create(inputs), inputs, status: "DRAFT" });
    // cancelled by Mixpeek's kill
    const killed = tasks[tasks.length - 1]!;
    const kill = await mixpeek("DELETE", "/v1/tasks/{task_id}", `/v1/tasks/${killed.id}`);
    expect(kill.status).toBe(200);
    expect(kill.json.success).toBe(true);
    killed.status = "CANCELED";
  }, 180_000);

  afterAll(async () => {
    await processor?.close();
    await dev?.dispose();
  }, 60_000);

  it("GET answers a TaskResponse in every status, with inputs and outputs kept whole", async () => {
    for (const t of tasks) {
      if (t.status === "PENDING") {
        // Between its retries the refused task is queued; it is processing only for the instant of a dispatch.
        await expect.poll(async () => (await getTask(t.id)).json.status, WAIT).toBe("PENDING");
      }
      const res = await getTask(t.id);
      expect(res.status).toBe(200);
      expect(res.json.status, t.id).toBe(t.status);
      expect(res.json.task_type).toBe("plugin_custom");
      expect(res.json.inputs).toEqual([t.inputs]);
      expect(res.json.outputs).toEqual(t.outputs ? [t.outputs] : null);
      // A task waiting for its retry keeps the error of the attempt that failed.
      const error = { FAILED: "the file is not a video", PENDING: "processor answered 503" }[t.status as "FAILED" | "PENDING"] ?? null;
      expect(res.json.error).toBe(error);
      const extra = res.json.additional_data as Json;
      expect(extra.task_type).toBe("mp_work");
      expect(extra).toHaveProperty("progress");
      expect(extra).toHaveProperty("attempt");
      expect(extra).toHaveProperty("created_at");
    }
    expect([...seenStatuses].sort()).toEqual(["CANCELED", "COMPLETED", "DRAFT", "FAILED", "PENDING", "PROCESSING"]);
  });

  it("lists with no body at all, also sent as Content-Type: application/json, newest first", async () => {
    const bare = await call("POST", "/mixpeek/v1/tasks/list", { headers: { "content-type": "application/json" } });
    expect(bare.status, bare.text).toBe(200);
    const res = await list("");
    expect(res.status).toBe(200);
    expect((res.json.results as Json[]).map((t) => t.task_id)).toEqual(tasks.map((t) => t.id).reverse());
    const empty = await list("", {});
    // eta_seconds follows a completion rate that decays in real time between the two reads.
    expect(withoutEta(empty.json.results)).toEqual(withoutEta(res.json.results));
  });

  it("pages by offset: every task once, page numbers, links, the end", async () => {
    const ids: string[] = [];
    let path: string | null = "/mixpeek/v1/tasks/list?limit=3&offset=0&include_total=true";
    let pages = 0;
    while (path !== null) {
      const res = await mixpeek("POST", "/v1/tasks/list", path.replace(/^\/mixpeek/, ""));
      expect(res.status).toBe(200);
      const pagination = res.json.pagination as Json;
      pages += 1;
      expect(pagination).toMatchObject({ page: pages, page_size: 3, total: tasks.length, total_pages: Math.ceil(tasks.length / 3) });
      ids.push(...(res.json.results as Json[]).map((t) => t.task_id as string));
      path = pagination.next_page as string | null;
      expect(pages).toBeLessThan(10);
    }
    expect(pages).toBe(Math.ceil(tasks.length / 3));
    expect(ids).toEqual(tasks.map((t) => t.id).reverse());
    const past = await list(`?limit=3&offset=${tasks.length}`);
    expect(past.json.results).toEqual([]);
    expect((past.json.pagination as Json).next_page).toBeNull();
  });

  it("pages by cursor: every task once, then next_cursor null", async () => {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page += 1) {
      const res = await list(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { sort: { field: "created_at", direction: "asc" } });
      expect(res.status).toBe(200);
      ids.push(...(res.json.results as Json[]).map((t) => t.task_id as string));
      cursor = (res.json.pagination as Json).next_cursor as string | null;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    expect(ids).toEqual(tasks.map((t) => t.id));
  });

  it("filters by Mixpeek status and type names and by filters, by offset and by cursor alike", async () => {
    const idsOf = (res: { json: Json }) => (res.json.results as Json[]).map((t) => t.task_id as string).sort();
    const having = (status: string) => tasks.filter((t) => t.status === status).map((t) => t.id).sort();
    expect(idsOf(await list("", { status: "DRAFT" }))).toEqual(having("DRAFT"));
    expect(idsOf(await list("?offset=0", { status: "draft" }))).toEqual(having("DRAFT"));
    expect(idsOf(await list("?offset=0", { filters: { AND: [{ field: "status", operator: "in", value: ["FAILED", "CANCELED"] }] } }))).toEqual(
      [...having("FAILED"), ...having("CANCELED")].sort(),
    );
    expect(idsOf(await list("", { task_type: "mp_work", filters: { status: "COMPLETED" } }))).toEqual(having("COMPLETED"));
    expect(idsOf(await list("", { status: "ARCHIVED" }))).toEqual([]);
    expect(idsOf(await list("?offset=0", { task_type: "engine_cluster_build" }))).toEqual([]);
    const total = await list("?include_total=true", { status: "DRAFT" });
    expect(total.json.pagination).toMatchObject({ total: having("DRAFT").length, total_pages: 1 });
  });

  it("answers errors in the document's shapes: 401, 404, 422 with FastAPI's detail, 400", async () => {
    const unauthorized = await mixpeek("GET", "/v1/tasks/{task_id}", `/v1/tasks/${tasks[0]!.id}`, { token: null });
    expect(unauthorized.status).toBe(401);
    const missing = await getTask("tsk_doesnotexist000000000000");
    expect(missing.status).toBe(404);
    expect((missing.json.error as Json).type).toBe("not_found");
    const unknownKill = await mixpeek("DELETE", "/v1/tasks/{task_id}", "/v1/tasks/tsk_doesnotexist000000000000");
    expect(unknownKill.status).toBe(200);
    const refused = [
      ["?limit=0", undefined, ["query", "limit"]],
      ["?offset=10001", undefined, ["query", "offset"]],
      ["?offset=0&cursor=abc", undefined, ["query", "offset"]],
      ["?cursor=garbage", undefined, ["query", "cursor"]],
      ["", { search: "x" }, ["body", "search"]],
      ["", { status: "NOPE" }, ["body", "status"]],
      ["", { sort: { field: "priority" } }, ["body", "sort", "field"]],
      ["", { extra: 1 }, ["body"]],
    ] as const;
    for (const [query, body, loc] of refused) {
      const res = await list(query, body);
      expect(res.status, `${query} ${JSON.stringify(body)}`).toBe(422);
      expect((res.json.detail as Json[])[0], `${query} ${JSON.stringify(body)}`).toMatchObject({ loc, type: "value_error" });
      expect((res.json.error as Json).type).toBe("validation_error");
    }
    const malformed = await mixpeek("POST", "/v1/tasks/list", "/v1/tasks/list", { rawBody: "{not json", headers: { "content-type": "application/json" } });
    expect(malformed.status).toBe(400);
    const notJson = await mixpeek("POST", "/v1/tasks/list", "/v1/tasks/list", { rawBody: '{"status":"DRAFT"}', headers: { "content-type": "text/plain" } });
    expect(notJson.status).toBe(400);
  });
});

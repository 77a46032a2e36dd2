import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import { base64url } from "../src/ids";
import { ADMIN, call, createTask, Latch, tenant, type Tenant, waitForStatus } from "./helpers";
import { fakeEndpoints, HOOK_BASE } from "./fake-endpoint";

registerHandler({
  type: "lst_logged",
  run: async (ctx) => {
    for (const n of [1, 2, 3]) await ctx.log(`line ${n}`);
    return {};
  },
});
registerHandler({ type: "lst_a", run: async () => ({}) });
const latch = new Latch();
registerHandler({ type: "lst_hold", run: async (ctx) => (await latch.hold(ctx.task.task_id, ctx.signal), {}) });
registerHandler({ type: "lst_b", run: async () => ({}) });

let endpoints: ReturnType<typeof fakeEndpoints> | null = null;
afterEach(() => {
  endpoints?.restore();
  endpoints = null;
});

type Item = Record<string, unknown>;
interface ListPage {
  results: Item[];
  pagination: { limit: number; next_cursor: string | null; total?: number };
}

/** What a case made: the list's path, the ids it must show, and how to read an item's id. */
interface Made {
  path: string;
  ids: string[];
  id: (item: Item) => string;
  token: string;
  /** POST /v1/tasks/list takes its filters in a body. */
  body?: unknown;
  /** false for the admin's list of namespaces, which other tests' namespaces share. */
  exact?: boolean;
}

/** A task that has finished, so its place in either sort order stays put while the test pages. */
const finishedTask = (t: Tenant) => async () => (await waitForStatus(t, (await createTask(t, { task_type: "lst_a" })).task_id, "completed")).task_id;

const field = (name: string) => (item: Item) => String(item[name]);

async function created(path: string, token: string, body: unknown, idField: string): Promise<string> {
  const res = await call(path, { token, body, method: path.startsWith("/v1/processors/") ? "PUT" : "POST" });
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  return String(res.body[idField]);
}

async function three(make: (n: number) => Promise<string>): Promise<string[]> {
  const ids: string[] = [];
  for (const n of [1, 2, 3]) ids.push(await make(n));
  return ids;
}

/** Every list endpoint, each with three items of its own. */
const CASES: Record<string, (t: Tenant) => Promise<Made>> = {
  "GET /v1/tasks": async (t) => ({
    path: "/v1/tasks",
    ids: await three(finishedTask(t)),
    id: field("task_id"),
    token: t.key,
  }),
  "POST /v1/tasks/list": async (t) => ({
    path: "/v1/tasks/list",
    ids: await three(finishedTask(t)),
    id: field("task_id"),
    token: t.key,
    body: { sort: { field: "updated_at", direction: "asc" } },
  }),
  "GET /v1/namespaces": async () => ({
    path: "/v1/namespaces",
    ids: await three((n) => created("/v1/namespaces", ADMIN, { namespace_name: `lst-${crypto.randomUUID().slice(0, 8)}-${n}` }, "namespace_id")),
    id: field("namespace_id"),
    token: ADMIN,
    exact: false,
  }),
  "GET /v1/namespaces/{ns}/api-keys": async () => {
    const ns = await created("/v1/namespaces", ADMIN, { namespace_name: `lst-keys-${crypto.randomUUID().slice(0, 8)}` }, "namespace_id");
    const ids = await three((n) => created(`/v1/namespaces/${ns}/api-keys`, ADMIN, { name: `k${n}` }, "key_id"));
    return { path: `/v1/namespaces/${ns}/api-keys`, ids, id: field("key_id"), token: ADMIN };
  },
  "GET /v1/buckets": async (t) => ({
    path: "/v1/buckets",
    ids: await three((n) => created("/v1/buckets", t.key, { bucket_name: `b${n}` }, "bucket_id")),
    id: field("bucket_id"),
    token: t.key,
  }),
  "GET /v1/buckets/{b}/objects": async (t) => {
    await created("/v1/buckets", t.key, { bucket_name: "objs" }, "bucket_id");
    const ids = await three((n) => created("/v1/buckets/objs/objects", t.key, { content: `object ${n}` }, "object_id"));
    return { path: "/v1/buckets/objs/objects", ids, id: field("object_id"), token: t.key };
  },
  "GET /v1/collections": async (t) => {
    const bucket = await created("/v1/buckets", t.key, { bucket_name: "src" }, "bucket_id");
    const ids = await three((n) => created("/v1/collections", t.key, { collection_name: `c${n}`, source_bucket_ids: [bucket] }, "collection_id"));
    return { path: "/v1/collections", ids, id: field("collection_id"), token: t.key };
  },
  "GET /v1/collections/{c}/documents": async (t) => {
    const bucket = await created("/v1/buckets", t.key, { bucket_name: "docs" }, "bucket_id");
    await created("/v1/collections", t.key, { collection_name: "docs", source_bucket_ids: [bucket] }, "collection_id");
    const ids = await three(async (n) => {
      const object = await call("/v1/buckets/docs/objects", { token: t.key, body: { content: `the document number ${n}` } });
      const done = await waitForStatus(t, object.body.task_ids[0], "completed");
      return String(done.outputs?.document_id);
    });
    return { path: "/v1/collections/docs/documents", ids, id: field("document_id"), token: t.key };
  },
  "GET /v1/taxonomies": async (t) => ({
    path: "/v1/taxonomies",
    ids: await three((n) => created("/v1/taxonomies", t.key, { taxonomy_name: `tx${n}`, nodes: [{ label: "a", examples: ["an example"] }] }, "taxonomy_id")),
    id: field("taxonomy_id"),
    token: t.key,
  }),
  "GET /v1/webhooks": async (t) => ({
    path: "/v1/webhooks",
    ids: await three((n) => created("/v1/webhooks", t.key, { url: `${HOOK_BASE}lst${n}`, event_types: ["task.completed"] }, "webhook_id")),
    id: field("webhook_id"),
    token: t.key,
  }),
  "GET /v1/webhooks/{w}/deliveries": async (t) => {
    endpoints = fakeEndpoints();
    const hook = await created("/v1/webhooks", t.key, { url: `${HOOK_BASE}lst-deliveries`, event_types: ["task.completed"] }, "webhook_id");
    const ids = await three(() => created(`/v1/webhooks/${hook}/test`, t.key, undefined, "delivery_id"));
    return { path: `/v1/webhooks/${hook}/deliveries`, ids, id: field("delivery_id"), token: t.key };
  },
  "GET /v1/processors": async (t) => ({
    path: "/v1/processors",
    ids: await three((n) => created(`/v1/processors/lst_proc${n}`, t.key, { url: `https://proc.test/run${n}` }, "task_type")),
    id: field("task_type"),
    token: t.key,
  }),
  "GET /v1/tasks/{t}/logs": async (t) => {
    const task = await createTask(t, { task_type: "lst_logged" });
    await waitForStatus(t, task.task_id, "completed");
    // Lines have no id; the handler's three are told apart by their message.
    return { path: `/v1/tasks/${task.task_id}/logs`, ids: ["line 1", "line 2", "line 3"], id: field("message"), token: t.key, exact: false };
  },
};

async function page(made: Made, query: string): Promise<{ status: number; body: ListPage }> {
  const sep = made.path.includes("?") ? "&" : "?";
  const init = made.body === undefined ? {} : { body: made.body, method: "POST" };
  return call<ListPage>(`${made.path}${sep}${query}`, { token: made.token, ...init });
}

/** Every page of a list at two a page. */
async function walk(made: Made, extra = ""): Promise<ListPage[]> {
  const pages: ListPage[] = [];
  let cursor: string | null = null;
  do {
    const res = await page(made, `limit=2${extra}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    pages.push(res.body);
    cursor = res.body.pagination.next_cursor;
    expect(pages.length).toBeLessThan(1000);
  } while (cursor);
  return pages;
}

describe("every list", () => {
  for (const [name, make] of Object.entries(CASES)) {
    it(`${name}: pages of two with no repeat and no gap, total only when asked, 422 for a bad cursor`, async () => {
      const t = await tenant();
      const made = await make(t);
      const pages = await walk(made);
      const seen = pages.flatMap((p) => p.results.map(made.id));
      expect(new Set(seen).size, `no item twice: ${seen.join(", ")}`).toBe(seen.length);
      for (const p of pages) {
        expect(p.results.length).toBeLessThanOrEqual(2);
        expect(p.pagination.limit).toBe(2);
        expect(p.pagination).not.toHaveProperty("total");
      }
      expect(pages.at(-1)?.pagination.next_cursor).toBeNull();
      if (made.exact === false) {
        expect(seen).toEqual(expect.arrayContaining(made.ids));
      } else {
        expect(pages.map((p) => p.results.length)).toEqual([2, 1]);
        expect([...seen].sort()).toEqual([...made.ids].sort());
      }

      // With include_total, every page says how many match: the same number as walked.
      const counted = await walk(made, "&include_total=true");
      for (const p of counted) expect(p.pagination.total).toBe(made.exact === false ? seen.length : 3);
      expect(counted.flatMap((p) => p.results.map(made.id))).toEqual(seen);

      for (const bad of ["abc", "!!!", base64url(new TextEncoder().encode('{"l":"nothing","p":[1]}')), base64url(new TextEncoder().encode("[1,2]"))]) {
        const res = await page(made, `cursor=${encodeURIComponent(bad)}`);
        expect(res.status, `${bad}: ${JSON.stringify(res.body)}`).toBe(422);
        expect(res.body).toMatchObject({ success: false, error: { type: "validation_error", details: { field: "cursor" } } });
      }
    });
  }

  it("refuses a cursor of another list", async () => {
    const t = await tenant();
    const buckets = await CASES["GET /v1/buckets"]!(t);
    const cursor = (await page(buckets, "limit=1")).body.pagination.next_cursor;
    expect(cursor).not.toBeNull();
    for (const path of ["/v1/collections", "/v1/taxonomies", "/v1/webhooks", "/v1/tasks"]) {
      expect((await call(`${path}?cursor=${cursor}`, { token: t.key })).status).toBe(422);
    }
    // bench/run.mjs forges task cursors at random depths in this format.
    const forged = base64url(new TextEncoder().encode(JSON.stringify({ l: "tasks:created_at:desc", p: [5] })));
    expect((await call(`/v1/tasks?status=completed&cursor=${forged}`, { token: t.key })).status).toBe(200);
  });

  it("a cursor of one namespace used in another never shows the first one's rows", async () => {
    for (const name of ["GET /v1/buckets", "GET /v1/webhooks", "GET /v1/processors", "GET /v1/tasks", "GET /v1/taxonomies"]) {
      const mine = await tenant();
      const theirs = await tenant();
      const theirItems = await CASES[name]!(theirs);
      const myItems = await CASES[name]!(mine);
      const theirCursor = (await page(theirItems, "limit=1")).body.pagination.next_cursor;
      expect(theirCursor).not.toBeNull();
      const res = await page(myItems, `limit=100&include_total=true&cursor=${theirCursor}`);
      expect(res.status).toBe(200);
      const shown = res.body.results.map(myItems.id);
      for (const id of shown) expect(theirItems.ids, `${name} leaked ${id}`).not.toContain(id);
      expect(myItems.ids).toEqual(expect.arrayContaining(shown));
      // The total is the caller's own, whatever the cursor.
      expect(res.body.pagination.total, name).toBe(3);
    }
  });
});

describe("repeated filter values", () => {
  /** Two cancelled tasks, and two that are not: one holding the namespace's only slot, one waiting for it. */
  async function cancelledAndOther(t: Tenant) {
    const holder = await createTask(t, { task_type: "lst_hold" });
    await waitForStatus(t, holder.task_id, "processing");
    const cancelled = [];
    for (let i = 0; i < 2; i++) {
      const task = await createTask(t, { task_type: "lst_a" });
      const res = await call(`/v1/tasks/${task.task_id}/cancel`, { token: t.key, method: "POST" });
      expect(res.body.status).toBe("cancelled");
      cancelled.push(task.task_id);
    }
    await createTask(t, { task_type: "lst_b" });
    return { cancelled: cancelled.sort(), release: () => latch.release(holder.task_id) };
  }

  const ids = (body: ListPage) => body.results.map((r) => String(r.task_id)).sort();

  it("status=cancelled,CANCELED lists each task once, by GET and by POST /v1/tasks/list", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const { cancelled, release } = await cancelledAndOther(t);
    onTestFinished(release);
    const get = await call<ListPage>("/v1/tasks?status=cancelled,CANCELED&include_total=true", { token: t.key });
    expect(get.status).toBe(200);
    expect(ids(get.body)).toEqual(cancelled);
    expect(get.body.pagination.total).toBe(2);
    for (const status of [["cancelled", "CANCELED"], "cancelled,CANCELED", ["Canceled", "cancelled", "CANCELED"]]) {
      const post = await call<ListPage>("/v1/tasks/list?include_total=true", { token: t.key, body: { status } });
      expect(post.status).toBe(200);
      expect(ids(post.body)).toEqual(cancelled);
      expect(post.body.pagination.total).toBe(2);
    }
    // Paged at one a page, a repeated status still walks each task once.
    const walked = await walk({ path: "/v1/tasks?status=CANCELED,cancelled", ids: cancelled, id: field("task_id"), token: t.key, exact: false });
    expect(walked.flatMap((p) => p.results.map(field("task_id"))).sort()).toEqual(cancelled);
  });

  it("task_type=a,a lists each task once, by GET and by POST /v1/tasks/list", async () => {
    const t = await tenant();
    const a = [await finishedTask(t)(), await finishedTask(t)()].sort();
    await waitForStatus(t, (await createTask(t, { task_type: "lst_b" })).task_id, "completed");
    const get = await call<ListPage>("/v1/tasks?task_type=lst_a,lst_a&include_total=true", { token: t.key });
    expect(ids(get.body)).toEqual(a);
    expect(get.body.pagination.total).toBe(2);
    // A status filter too: the task types then filter within each status's range.
    const both = await call<ListPage>("/v1/tasks?task_type=lst_a,lst_a&status=completed,COMPLETED", { token: t.key });
    expect(ids(both.body)).toEqual(a);
    for (const body of [{ task_type: ["lst_a", "lst_a"] }, { task_type: "lst_a,lst_a" }, { task_type: ["lst_a", "lst_a"], sort: { field: "updated_at", direction: "desc" } }]) {
      const post = await call<ListPage>("/v1/tasks/list?include_total=true", { token: t.key, body });
      expect(ids(post.body)).toEqual(a);
      expect(post.body.pagination.total).toBe(2);
    }
  });
});

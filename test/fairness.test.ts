import { afterEach, describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";
import { call, createTask, eventually, getTask, tenant as newTenant, sleep, stub, type Tenant } from "./helpers";
import { advance, allEvents, query } from "./inspect";

const open = new Set<string>();
const latch = { entered: new Set<string>(), release: (id: string) => open.add(id), isOpen: (id: string) => open.has(id) };
/** The namespaces of the running test: a held task of an earlier test's namespace runs through. */
const holding = new Set<string>();
const tenants: Tenant[] = [];
const tenant = async (settings?: Record<string, number | null>): Promise<Tenant> => {
  const t = await newTenant(settings);
  holding.add(t.namespaceId);
  tenants.push(t);
  return t;
};
/** Held until released; yields every slice meanwhile, so a cancelled one lets go of the consumer. */
registerHandler({
  type: "fair_held",
  run: async (ctx) => {
    latch.entered.add(ctx.task.task_id);
    while (!latch.isOpen(ctx.task.task_id) && holding.has(ctx.task.namespace_id)) {
      if (ctx.shouldYield() || ctx.signal.aborted) return ctx.yield({});
      await sleep(10);
    }
    return {};
  },
});
registerHandler({ type: "fair_quick", run: async () => ({ done: true }) });
// A held handler would hold the queue consumer for the tests after it (a slice lasts 10 s), and
// a seeded backlog would keep it busy: every test's tasks are cancelled and let go at its end.
afterEach(async () => {
  holding.clear();
  for (const id of latch.entered) latch.release(id);
  for (const t of tenants.splice(0)) await stub(t).bulkCancel({ status: ["created", "queued", "processing"] });
});

const stats = async (t: Tenant) => (await call("/v1/tasks/stats", { token: t.key })).body;
const cancel = (t: Tenant, id: string) => call(`/v1/tasks/${id}/cancel`, { token: t.key, method: "POST" });
const holds = (s: string | undefined) => s === "queued" || s === "processing";

/**
 * Replays the namespace's events: the most tasks that ever held a slot at once, in all and per
 * concurrency key (seeded tasks have no created event; their key comes with their first one).
 */
async function peaks(t: Tenant): Promise<{ all: number; perKey: Map<string, number> }> {
  const status = new Map<string, string>();
  const active = new Map<string, number>();
  const perKey = new Map<string, number>();
  let all = 0;
  let peak = 0;
  for (const e of await allEvents(t)) {
    if (!e.event_type.startsWith("task.") || e.event_type === "task.progress") continue;
    const task = (JSON.parse(e.data) as { data: { task: Task } }).data.task;
    const key = task.concurrency_key ?? "";
    const was = status.get(e.task_id);
    const now = e.event_type.slice("task.".length);
    const delta = (holds(now) ? 1 : 0) - (holds(was) ? 1 : 0);
    status.set(e.task_id, now);
    all += delta;
    active.set(key, (active.get(key) ?? 0) + delta);
    peak = Math.max(peak, all);
    perKey.set(key, Math.max(perKey.get(key) ?? 0, active.get(key) ?? 0));
  }
  return { all: peak, perKey };
}

/** The fair queue's counters agree with the tasks table: every group, every key's slots. */
async function expectFairStateConsistent(t: Tenant): Promise<void> {
  const groups = await query<{ key: string; priority: number; waiting: number }>(t, "SELECT key, priority, waiting FROM fair_queue ORDER BY key, priority");
  const ready = await query<{ key: string; priority: number; waiting: number }>(
    t,
    "SELECT concurrency_key AS key, priority, COUNT(*) AS waiting FROM tasks WHERE status = 'created' AND scheduled = 0 GROUP BY concurrency_key, priority ORDER BY concurrency_key, priority",
  );
  expect(groups).toEqual(ready);
  const keys = await query<{ key: string; active: number }>(t, "SELECT key, active FROM fair_keys ORDER BY key");
  const active = await query<{ key: string; active: number }>(
    t,
    // Keyless tasks never block: their slots are not kept.
    "SELECT concurrency_key AS key, COUNT(*) AS active FROM tasks WHERE status IN ('queued', 'processing') AND concurrency_key != '' GROUP BY concurrency_key ORDER BY concurrency_key",
  );
  expect(keys).toEqual(active);
}

const seed = (t: Tenant, count: number, key: string, priority = 5) =>
  stub(t).seedBacklog({ count, task_type: "fair_held", keys: 1, key_prefix: key.slice(0, -1), priority }).then(async (n) => {
    // keys: 1 names the key prefix + "0": tests pass keys ending in "0".
    expect(key.endsWith("0")).toBe(true);
    return n;
  });

describe("fairness inside a namespace", () => {
  it("serves a key with 10 tasks next to one with 10 000 waiting, within one admission round, and says why each waits", async () => {
    const t = await tenant({ max_concurrent_tasks: 3, max_concurrent_per_key: 2 });
    await seed(t, 10_000, "big0");
    // The big key holds its limit of two slots; the third stays free for anyone else.
    expect(await stats(t)).toMatchObject({ created: 9998 });
    const small: Task[] = [];
    for (let i = 0; i < 10; i++) small.push(await createTask(t, { task_type: "fair_held", concurrency_key: "small0", inputs: { i } }));
    expect(small[0]?.status).toBe("queued");
    expect(small[0]?.concurrency_key).toBe("small0");
    expect(small[1]?.status).toBe("created");

    // small[1]: its key has room for one more, the namespace none: the next to go.
    expect((await getTask(t, small[1]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_limit", position: 1, eta_seconds: null });
    // small[2]: its key's one free slot goes to small[1] first.
    expect((await getTask(t, small[2]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_key", position: 1 });
    // A big-key task waits for its key, its place among the key's waiting tasks.
    const bigWaiting = await query<{ task_id: string }>(t, "SELECT task_id FROM tasks WHERE concurrency_key = 'big0' AND status = 'created' ORDER BY seq LIMIT 3");
    expect((await getTask(t, bigWaiting[2]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_key", position: 3 });

    // Free slots one at a time, the oldest running task first: admissions alternate between
    // the keys, so the small key's tasks never wait behind more than one big task a round.
    for (let round = 0; round < 24; round++) {
      const oldest = (await query<{ task_id: string }>(t, "SELECT task_id FROM tasks WHERE status IN ('queued', 'processing') ORDER BY queued_at, seq LIMIT 1"))[0];
      if (!oldest) break;
      await cancel(t, oldest.task_id);
    }
    const admitted: string[] = [];
    for (const e of await allEvents(t)) {
      if (e.event_type !== "task.queued") continue;
      admitted.push((JSON.parse(e.data) as { data: { task: Task } }).data.task.concurrency_key ?? "");
    }
    const fromSmall = admitted.slice(admitted.indexOf("small0"));
    const untilLastSmall = fromSmall.slice(0, fromSmall.lastIndexOf("small0") + 1);
    expect(untilLastSmall.filter((k) => k === "small0")).toHaveLength(10);
    expect(untilLastSmall.join(",")).not.toContain("big0,big0");
    const peak = await peaks(t);
    expect(peak.all).toBe(3);
    expect(peak.perKey.get("big0")).toBe(2);
    expect(peak.perKey.get("small0")).toBe(2);
    await expectFairStateConsistent(t);
  });

  it("keeps a key at its limit waiting while other keys and keyless tasks take the free slots", async () => {
    const t = await tenant({ max_concurrent_tasks: 4, max_concurrent_per_key: 1 });
    const a = [await createTask(t, { task_type: "fair_held", concurrency_key: "a" }), await createTask(t, { task_type: "fair_held", concurrency_key: "a" })];
    const b = await createTask(t, { task_type: "fair_held", concurrency_key: "b" });
    const none = [await createTask(t, { task_type: "fair_held" }), await createTask(t, { task_type: "fair_held" })];
    expect(a[0]?.status).toBe("queued");
    expect(a[1]?.status).toBe("created");
    expect(b.status).toBe("queued");
    expect(none.map((n) => n.status)).toEqual(["queued", "queued"]);
    // A slot is free, but a's second task waits for its key.
    expect((await stats(t)).created).toBe(1);
    expect((await getTask(t, a[1]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_key", position: 1 });
    await cancel(t, a[0]?.task_id ?? "");
    expect((await getTask(t, a[1]?.task_id ?? "")).status).toBe("queued");

    // Raising the per-key limit admits at once; removing it too.
    const c = [await createTask(t, { task_type: "fair_held", concurrency_key: "c" }), await createTask(t, { task_type: "fair_held", concurrency_key: "c" })];
    expect(c[1]?.status).toBe("created");
    await call(`/v1/namespaces/${t.name}`, { token: "test-admin-token", method: "PATCH", body: { settings: { max_concurrent_tasks: 10, max_concurrent_per_key: null } } });
    expect((await getTask(t, c[1]?.task_id ?? "")).status).toBe("queued");
    await expectFairStateConsistent(t);
    for (const task of [...a, b, ...none, ...c]) await cancel(t, task.task_id);
    await expectFairStateConsistent(t);
  });

  it("refuses a concurrency_key over 128 characters and a schedule past 30 days, changing nothing", async () => {
    const t = await tenant();
    const long = await call("/v1/tasks", { token: t.key, body: { task_type: "fair_held", concurrency_key: "k".repeat(129) } });
    expect(long.status).toBe(422);
    const far = await call("/v1/tasks", { token: t.key, body: { task_type: "fair_held", run_at: new Date(Date.now() + 31 * 86400_000).toISOString() } });
    expect(far.status).toBe(422);
    const both = await call("/v1/tasks", { token: t.key, body: { task_type: "fair_held", run_at: new Date().toISOString(), delay_seconds: 5 } });
    expect(both.status).toBe(422);
    const tooLong = await call("/v1/tasks", { token: t.key, body: { task_type: "fair_held", delay_seconds: 30 * 86400 + 1 } });
    expect(tooLong.status).toBe(422);
    expect(await stats(t)).toMatchObject({ created: 0, queued: 0, processing: 0 });
  });
});

describe("scheduled start", () => {
  it("keeps a delayed task created as scheduled until its time, then the alarm admits it", async () => {
    const t = await tenant();
    const later = await createTask(t, { task_type: "fair_quick", delay_seconds: 600 });
    const sooner = await createTask(t, { task_type: "fair_quick", run_at: new Date(Date.now() + 60_000).toISOString() });
    expect(later.status).toBe("created");
    expect(later.run_at).not.toBeNull();
    expect(later.waiting).toMatchObject({ reason: "scheduled", position: 1 });
    expect(later.waiting?.eta_seconds).toBeGreaterThan(590);
    expect((await getTask(t, later.task_id)).waiting).toMatchObject({ reason: "scheduled", position: 2 });
    expect((await getTask(t, sooner.task_id)).waiting).toMatchObject({ reason: "scheduled", position: 1 });
    await advance(t, 61_000);
    expect((await getTask(t, sooner.task_id)).status).not.toBe("created");
    expect((await getTask(t, later.task_id)).waiting).toMatchObject({ reason: "scheduled", position: 1 });
    await advance(t, 540_000);
    await eventually(async () => ((await getTask(t, later.task_id)).status === "completed" ? true : undefined), 10_000, "the later task to run");
    await expectFairStateConsistent(t);
  });

  it("a scheduled task cancelled before it is due never starts", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "fair_quick", delay_seconds: 60, concurrency_key: "k" });
    expect((await cancel(t, task.task_id)).body.status).toBe("cancelled");
    await advance(t, 61_000);
    const events = (await allEvents(t)).filter((e) => e.task_id === task.task_id).map((e) => e.event_type);
    expect(events).toEqual(["task.created", "task.cancelled"]);
    await expectFairStateConsistent(t);
  });

  it("a scheduled task due while the namespace is full waits for a slot, then starts", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const blocker = await createTask(t, { task_type: "fair_held" });
    const task = await createTask(t, { task_type: "fair_held", delay_seconds: 30 });
    const behind = [await createTask(t, { task_type: "fair_held" }), await createTask(t, { task_type: "fair_held", concurrency_key: "k" })];
    // Ready tasks come first; the scheduled one is not yet in line.
    expect((await getTask(t, behind[0]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_limit", position: 1 });
    expect((await getTask(t, behind[1]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_limit", position: 2 });
    await advance(t, 31_000);
    // Released, it heads its group (the oldest keyless task); the round goes keyless, k, keyless.
    expect((await getTask(t, task.task_id)).waiting).toMatchObject({ reason: "concurrency_limit", position: 1 });
    expect((await getTask(t, behind[1]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_limit", position: 2 });
    expect((await getTask(t, behind[0]?.task_id ?? "")).waiting).toMatchObject({ reason: "concurrency_limit", position: 3 });
    await cancel(t, blocker.task_id);
    expect(holds((await getTask(t, task.task_id)).status)).toBe(true);
    for (const other of [task, ...behind]) await cancel(t, other.task_id);
  });
});

describe("the limits hold exactly with keys, priorities and schedules mixed", () => {
  it("never exceeds max_concurrent_tasks nor max_concurrent_per_key at any instant of the event log", async () => {
    const t = await tenant({ max_concurrent_tasks: 5, max_concurrent_per_key: 2 });
    const made: Task[] = [];
    for (let i = 0; i < 40; i++) {
      const body: Record<string, unknown> = { task_type: "fair_quick", priority: i % 3 === 0 ? 8 : 5, inputs: { i } };
      if (i % 4 !== 3) body.concurrency_key = `k${i % 3}`;
      if (i % 5 === 0) body.delay_seconds = 10 + i;
      made.push(await createTask(t, body));
    }
    await advance(t, 60_000);
    await eventually(async () => {
      const s = await stats(t);
      return s.created + s.queued + s.processing === 0 ? true : undefined;
    }, 20_000, "every task to finish").catch(async (err) => {
      console.log(await stats(t), await query(t, "SELECT task_id, status, concurrency_key, priority, scheduled, run_at FROM tasks WHERE status IN ('created','queued','processing')"), await query(t, "SELECT * FROM fair_queue"), await query(t, "SELECT * FROM fair_keys"));
      throw err;
    });
    const peak = await peaks(t);
    expect(peak.all).toBeLessThanOrEqual(5);
    for (const [key, most] of peak.perKey) if (key !== "") expect(most, key).toBeLessThanOrEqual(2);
    await expectFairStateConsistent(t);
  });
});

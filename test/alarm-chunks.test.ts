import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DELIVERY_CHUNK } from "../src/namespace/deliveries";
import type { NamespaceDO } from "../src/namespace/do";
import { EVICT_CHUNK, LOG_BATCH } from "../src/namespace/outbox";
import { yieldTurn } from "../src/namespace/turn";
import { eventually, stub, tenant, type Tenant } from "./helpers";
import { fakeEndpoints } from "./fake-endpoint";
import { allEvents, query } from "./inspect";
import { hook } from "./webhook-driver";
import type { TestNamespaceDO } from "./namespace-do";

/** The parts of the object these tests reach into. */
type Inner = {
  core: { store: { storeEventOnly(type: string, taskId: string | null, data: Record<string, unknown>, at: number): string }; webhooks: { enqueue(webhookId: string, eventId: string, type: string, now: number): unknown; update(webhookId: string, patch: { is_active: boolean }, now: number): unknown } };
  deliveries: { startDeliveries(now: number): Promise<number> };
};

type Sample = { tasks: number; records: number; lines: number };

/**
 * A ticker inside the object: at each of its turns it counts the live task rows and the outbox.
 * Between two of its turns only what other events did in one go can have changed, so the drop
 * between two samples bounds the work of any one of them.
 */
function sampler(t: Tenant): { stop(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  let ticking = true;
  const running = runInDurableObject(stub(t), async (_instance: NamespaceDO, state) => {
    while (ticking) {
      const [row] = state.storage.sql
        .exec<Sample>("SELECT (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM record_outbox) AS records, (SELECT COUNT(*) FROM outbox) AS lines")
        .toArray();
      if (row) samples.push(row);
      await yieldTurn();
    }
  });
  return {
    async stop() {
      ticking = false;
      await running;
      return samples;
    },
  };
}

const largestDrop = (samples: Sample[], of: keyof Sample): number =>
  samples.slice(1).reduce((most, s, i) => Math.max(most, (samples[i]?.[of] ?? 0) - s[of]), 0);

describe("the alarm works in bounded chunks (issue 14)", () => {
  it("flushes and evicts 600 cancelled tasks at most a chunk between two turns, re-arming until the outbox is empty", async () => {
    const count = 600;
    const t = await tenant({ max_concurrent_tasks: 1 });
    // Queue sends go nowhere: the one admitted task stays queued and is cancelled with the rest.
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.sendBatch = async () => undefined;
    });
    await stub(t).seedBacklog({ count, task_type: "chunk_idle", keys: 0, key_prefix: "", priority: 5 });
    const ticker = sampler(t);
    const result = await stub(t).bulkCancel({ task_type: ["chunk_idle"] });
    expect(result.cancelled).toBe(count);
    // Nothing but the alarm drains the outbox: it must come back by itself while rows remain.
    await eventually(async () => {
      const [left] = await query<Sample>(t, "SELECT (SELECT COUNT(*) FROM tasks) AS tasks, (SELECT COUNT(*) FROM record_outbox) AS records, (SELECT COUNT(*) FROM outbox) AS lines");
      return left && left.tasks + left.records + left.lines === 0 ? true : undefined;
    }, 20_000, "the outbox to drain and every task to leave the object");
    const samples = await ticker.stop();

    // A flush round used to clear 100 records and evict their tasks in one transaction.
    expect(largestDrop(samples, "tasks")).toBeLessThanOrEqual(EVICT_CHUNK);
    expect(largestDrop(samples, "records")).toBeLessThanOrEqual(EVICT_CHUNK);
    expect(largestDrop(samples, "lines")).toBeLessThanOrEqual(LOG_BATCH);
    // The ticker saw the drain happen in many steps, not once at the end.
    expect(samples.filter((s, i) => i > 0 && s.tasks < (samples[i - 1]?.tasks ?? 0)).length).toBeGreaterThanOrEqual(count / (2 * EVICT_CHUNK));

    // Nothing lost on the way: every task ended once, and its final record is in D1.
    const ends = (await allEvents(t)).filter((e) => e.event_type === "task.cancelled");
    expect(new Set(ends.map((e) => e.task_id)).size).toBe(count);
    expect(ends).toHaveLength(count);
    const records = await env.DB.prepare("SELECT COUNT(*) AS n FROM task_records WHERE namespace_id = ? AND status = 'cancelled'")
      .bind(t.namespaceId)
      .first<{ n: number }>();
    expect(records?.n).toBe(count);
  });

  it("reads each timer again after a turn: a lease renewed while the alarm yields is kept, not expired nor dropped", async () => {
    const count = 60;
    const t = await tenant({ max_concurrent_tasks: count });
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.sendBatch = async () => undefined;
    });
    await stub(t).seedBacklog({ count, task_type: "chunk_idle", keys: 0, key_prefix: "", priority: 5 });
    const ids = (await query<{ task_id: string }>(t, "SELECT task_id FROM tasks ORDER BY seq")).map((r) => r.task_id);
    const moved = await runInDurableObject(stub(t), (instance: TestNamespaceDO) => ids.filter((id) => instance.forceTransition(id, "processing").ok));
    expect(moved).toHaveLength(count);
    const renewed = ids[count - 1] ?? "";
    const outcome = await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
      const sql = state.storage.sql;
      const now = instance.clock.now();
      // Every lease ran out; the last one (due last, so in the alarm's second chunk of timers) by a hair.
      sql.exec("DELETE FROM timers WHERE kind = 'send'");
      ids.forEach((id, i) => {
        const expiredAt = id === renewed ? now - 1 : now - 10_000 + i;
        sql.exec("UPDATE tasks SET lease_expires_at = ? WHERE task_id = ?", expiredAt, id);
        sql.exec("INSERT INTO timers (task_id, kind, due_at, tries) VALUES (?, 'lease', ?, 0)", id, expiredAt);
      });
      const alarm = instance.alarm();
      // The alarm lists every due timer, handles the first chunk and yields: in that turn the
      // worker's progress report renews the last lease, as store.renewLease does.
      await yieldTurn();
      const later = now + 60_000;
      sql.exec("UPDATE tasks SET lease_expires_at = ? WHERE task_id = ?", later, renewed);
      sql.exec("UPDATE timers SET due_at = ? WHERE task_id = ? AND kind = 'lease'", later, renewed);
      await alarm;
      return {
        timer: sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE task_id = ? AND kind = 'lease'", renewed).toArray()[0]?.due_at ?? null,
        status: sql.exec<{ status: string }>("SELECT status FROM tasks WHERE task_id = ?", renewed).toArray()[0]?.status ?? null,
        later,
      };
    });
    expect(outcome).toEqual({ timer: outcome.later, status: "processing", later: outcome.later });
    // The others' leases had run out: each attempt ended (max_attempts 1: failed).
    const others = await query<{ status: string; n: number }>(t, "SELECT status, COUNT(*) AS n FROM tasks WHERE task_id != ? GROUP BY status", renewed);
    const evicted = count - 1 - others.reduce((n, r) => n + r.n, 0);
    expect(others.filter((r) => r.status !== "failed")).toEqual([]);
    expect(evicted + (others[0]?.n ?? 0)).toBe(count - 1);
  });

  it("keeps the flush timer set while a flush round is out, so that a restart midway loses no flush", async () => {
    const t = await tenant();
    await runInDurableObject(stub(t), (instance: NamespaceDO) => {
      instance.io.sendBatch = async () => undefined;
    });
    await stub(t).seedBacklog({ count: 5, task_type: "chunk_idle", keys: 0, key_prefix: "", priority: 5 });
    await stub(t).bulkCancel({ task_type: ["chunk_idle"] });
    const seen = await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
      const flushTimer = () => state.storage.sql.exec<{ due_at: number }>("SELECT due_at FROM timers WHERE kind = 'flush'").toArray().length;
      // D1 holds the round until released: the object could be restarted right there.
      let release = (): void => undefined;
      let calls = 0;
      const batch = instance.io.d1Batch;
      instance.io.d1Batch = async (statements) => {
        calls++;
        await new Promise<void>((resolve) => (release = resolve));
        return batch(statements);
      };
      instance.clock.advance(1000);
      const alarm = instance.alarm();
      while (calls === 0) await yieldTurn();
      const during = flushTimer();
      release();
      await alarm;
      instance.io.d1Batch = batch;
      return { during, after: flushTimer(), left: state.storage.sql.exec("SELECT task_id FROM record_outbox").toArray().length };
    });
    expect(seen).toEqual({ during: 1, after: 0, left: 0 });
  });

  it("starts deliveries a chunk at a time: an endpoint disabled between two chunks gets no more attempts", async () => {
    const endpoints = fakeEndpoints();
    try {
      const t = await tenant();
      const created = await hook(t, "chunks");
      const count = 40;
      const seen = await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
        const { core, deliveries } = instance as unknown as Inner;
        const now = instance.clock.now();
        // Due deliveries, made here so that no alarm is armed to start them first.
        state.storage.transactionSync(() => {
          for (let i = 0; i < count; i++) {
            const eventId = core.store.storeEventOnly("task.cancelled", null, { i }, now);
            core.webhooks.enqueue(created.webhook_id, eventId, "task.cancelled", now);
          }
        });
        // Between two chunks of starts the client disables the endpoint: its pending deliveries
        // fail. (Its turn is asked for first, so it comes before the second chunk's.)
        const turn = yieldTurn();
        const starting = deliveries.startDeliveries(now);
        await turn;
        state.storage.transactionSync(() => core.webhooks.update(created.webhook_id, { is_active: false }, now));
        await starting;
        return state.storage.sql
          .exec<{ status: string; attempts: number; n: number }>("SELECT status, attempts, COUNT(*) AS n FROM deliveries GROUP BY status, attempts ORDER BY attempts")
          .toArray();
      });
      // The first chunk went out (attempt 1, settled or still out); the rest never started.
      expect(seen.filter((r) => r.attempts === 0)).toEqual([{ status: "failed", attempts: 0, n: count - DELIVERY_CHUNK }]);
      expect(seen.filter((r) => r.attempts === 1).reduce((n, r) => n + r.n, 0)).toBe(DELIVERY_CHUNK);
    } finally {
      endpoints.restore();
    }
  });
});

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { EVICT_CHUNK, LOG_BATCH } from "../src/namespace/outbox";
import { yieldTurn } from "../src/namespace/turn";
import { eventually, stub, tenant, type Tenant } from "./helpers";
import { allEvents, query } from "./inspect";

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
    expect(samples.filter((s, i) => i > 0 && s.tasks < (samples[i - 1]?.tasks ?? 0)).length).toBeGreaterThanOrEqual(count / EVICT_CHUNK);

    // Nothing lost on the way: every task ended once, and its final record is in D1.
    const ends = (await allEvents(t)).filter((e) => e.event_type === "task.cancelled");
    expect(new Set(ends.map((e) => e.task_id)).size).toBe(count);
    expect(ends).toHaveLength(count);
    const records = await env.DB.prepare("SELECT COUNT(*) AS n FROM task_records WHERE namespace_id = ? AND status = 'cancelled'")
      .bind(t.namespaceId)
      .first<{ n: number }>();
    expect(records?.n).toBe(count);
  });
});

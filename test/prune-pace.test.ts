import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { IDEMPOTENCY_RETENTION_MS } from "../src/namespace/batch-keys";
import type { NamespaceDO } from "../src/namespace/do";
import { stub, tenant, type Tenant } from "./helpers";
import { query } from "./inspect";

/** Stores `n` idempotency rows already past their retention. */
async function expiredKeys(t: Tenant, n: number, prefix: string): Promise<void> {
  await runInDurableObject(stub(t), (instance: NamespaceDO, state) => {
    const old = instance.clock.now() - IDEMPOTENCY_RETENTION_MS - 1000;
    for (let i = 0; i < n; i++) {
      state.storage.sql.exec("INSERT INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, '', 'tsk_x', ?)", `${prefix}${i}`, old);
    }
  });
}

/**
 * Runs the object's alarm handler to its end, `ms` after the object's clock now: called, not
 * scheduled, so that no read falls between its turns.
 */
const alarm = (t: Tenant, ms = 0) =>
  runInDurableObject(stub(t), async (instance: NamespaceDO) => {
    instance.clock.advance(ms);
    await instance.alarm();
  });

const left = async (t: Tenant) => (await query<{ n: number }>(t, "SELECT COUNT(*) AS n FROM idempotency"))[0]?.n;

describe("the alarm's prune of expired rows", () => {
  it("goes on at every alarm while a round is full, then rests 10 s after a round that left nothing over", async () => {
    const t = await tenant();
    // Only the calls below run the alarm: none is left scheduled to run on its own.
    await runInDurableObject(stub(t), async (_i: NamespaceDO, state) => {
      await state.storage.deleteAlarm();
      state.storage.setAlarm = async () => undefined;
    });
    await expiredKeys(t, 300, "a");
    await alarm(t);
    expect(await left(t)).toBe(50); // a chunk of 250
    await alarm(t);
    expect(await left(t)).toBe(0); // the round before was full: no rest

    await expiredKeys(t, 10, "b");
    await alarm(t);
    expect(await left(t)).toBe(10); // the last round left nothing over: the prune rests
    await alarm(t, 10_000);
    expect(await left(t)).toBe(0);
  });
});

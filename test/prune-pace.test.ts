import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { IDEMPOTENCY_RETENTION_MS } from "../src/namespace/batch-keys";
import type { NamespaceDO } from "../src/namespace/do";
import { stub, tenant, type Tenant } from "./helpers";
import { advance, query } from "./inspect";

/** Stores `n` idempotency rows already past their retention, and arms the alarm for now. */
async function expiredKeys(t: Tenant, n: number, prefix: string): Promise<void> {
  await runInDurableObject(stub(t), async (instance: NamespaceDO, state) => {
    const old = instance.clock.now() - IDEMPOTENCY_RETENTION_MS - 1000;
    for (let i = 0; i < n; i++) {
      state.storage.sql.exec("INSERT INTO idempotency (key, request_hash, task_id, created_at) VALUES (?, '', 'tsk_x', ?)", `${prefix}${i}`, old);
    }
    await state.storage.setAlarm(Date.now());
  });
}

const left = async (t: Tenant) => (await query<{ n: number }>(t, "SELECT COUNT(*) AS n FROM idempotency"))[0]?.n;

describe("the alarm's prune of expired rows", () => {
  it("goes on at every alarm while a round is full, then rests 10 s after a round that left nothing over", async () => {
    const t = await tenant();
    await expiredKeys(t, 300, "a");
    await runDurableObjectAlarm(stub(t));
    expect(await left(t)).toBe(50); // a chunk of 250
    await runInDurableObject(stub(t), (_i: NamespaceDO, state) => state.storage.setAlarm(Date.now()));
    await runDurableObjectAlarm(stub(t));
    expect(await left(t)).toBe(0); // the round before was full: no rest

    await expiredKeys(t, 10, "b");
    await runDurableObjectAlarm(stub(t));
    expect(await left(t)).toBe(10); // the last round left nothing over: the prune rests
    await runInDurableObject(stub(t), (_i: NamespaceDO, state) => state.storage.setAlarm(Date.now()));
    await advance(t, 10_000);
    expect(await left(t)).toBe(0);
  });
});

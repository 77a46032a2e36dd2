import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import type { TestNamespaceDO } from "./namespace-do";
import { expect } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { call, eventually, sleep, stub, type Tenant } from "./helpers";
import { HOOK_BASE } from "./fake-endpoint";
import { advance, query } from "./inspect";

// Webhook helpers shared by test/webhooks.test.ts and test/webhooks-scale.test.ts.

export async function hook(t: Tenant, name: string, eventTypes: string[] = ["*"]) {
  const res = await call("/v1/webhooks", { token: t.key, body: { url: `${HOOK_BASE}${name}`, event_types: eventTypes } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { webhook_id: string; secret: string };
}

export type DeliveryRow = { delivery_id: string; event_id: string; event_type: string; status: string; attempts: number; next_attempt_at: number | null; last_status_code: number | null };

const DELIVERY_ROWS = "SELECT delivery_id, event_id, event_type, status, attempts, next_attempt_at, last_status_code FROM deliveries ORDER BY created_at, delivery_id";

export const deliveries = (t: Tenant) => query<DeliveryRow>(t, DELIVERY_ROWS);
export const now = (t: Tenant) => runInDurableObject(stub(t), (instance: NamespaceDO) => instance.clock.now());

/** Waits until no delivery attempt is out. */
export async function settle(t: Tenant): Promise<void> {
  await eventually(async () => ((await runInDurableObject(stub(t), (i: TestNamespaceDO) => i.deliveriesInFlight())) === 0 ? true : undefined), 20_000, "deliveries to settle");
}

/**
 * The delivery rows at a moment when no attempt is out, read in the same Durable Object turn as
 * that check: `settle()` then `deliveries()` can interleave with an alarm that starts an attempt
 * between the two (on a busy machine it does), and the rows then show the attempt's timeout as
 * its next attempt.
 */
export async function settledDeliveries(t: Tenant): Promise<DeliveryRow[]> {
  return eventually(
    () =>
      runInDurableObject(stub(t), (instance: TestNamespaceDO, state) =>
        instance.deliveriesInFlight() === 0 ? state.storage.sql.exec<DeliveryRow>(DELIVERY_ROWS).toArray() : undefined,
      ),
    20_000,
    "deliveries to settle",
  );
}

/** Runs the schedule to its end: jumps the clock to each next attempt until nothing is pending. */
export async function drive(t: Tenant, maxSteps = 500): Promise<void> {
  for (let step = 0; step < maxSteps; step++) {
    await settle(t);
    const pending = (await deliveries(t)).filter((d) => d.status === "pending");
    if (pending.length === 0) return;
    // Jump to the next attempt, taking along every attempt due within a minute of it.
    const next = Math.min(...pending.map((d) => d.next_attempt_at ?? Infinity));
    const wait = next - (await now(t));
    if (wait > 0) await advance(t, wait + 60_000);
    else await runDurableObjectAlarm(stub(t));
    await sleep(5);
  }
  throw new Error("the schedule did not finish");
}

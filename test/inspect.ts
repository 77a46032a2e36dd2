import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { vi } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { stub, type Tenant } from "./helpers";

export type EventRow = {
  seq: number;
  event_type: string;
  task_id: string;
  data: string;
};

/** Every stored event of the namespace, in sequence order. */
export async function allEvents(t: Tenant): Promise<EventRow[]> {
  return runInDurableObject(stub(t), (_instance: NamespaceDO, state) =>
    state.storage.sql.exec<EventRow>("SELECT seq, event_type, task_id, data FROM events ORDER BY seq").toArray(),
  );
}

export async function taskEvents(t: Tenant, taskId: string): Promise<EventRow[]> {
  return (await allEvents(t)).filter((e) => e.task_id === taskId);
}

/** Runs a query inside the namespace's Durable Object. */
export async function query<T extends Record<string, SqlStorageValue>>(t: Tenant, sql: string, ...params: SqlStorageValue[]): Promise<T[]> {
  return runInDurableObject(stub(t), (_instance: NamespaceDO, state) => state.storage.sql.exec<T>(sql, ...params).toArray());
}

/** Moves the Durable Object's clock forward and runs its alarm, as if that time had passed. */
export async function advance(t: Tenant, ms: number): Promise<void> {
  await runInDurableObject(stub(t), (instance: NamespaceDO) => instance.clock.advance(ms));
  await runDurableObjectAlarm(stub(t));
}

/** Stops the namespace's clock (until vi.restoreAllMocks), so that its request bucket refills by nothing during a burst. */
export async function freezeClock(t: Tenant): Promise<void> {
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    const at = instance.clock.now();
    vi.spyOn(instance.clock, "now").mockReturnValue(at);
  });
}

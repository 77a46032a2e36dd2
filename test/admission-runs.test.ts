import { describe, expect, it } from "vitest";
import { call, createTask, tenant, type Tenant } from "./helpers";
import { allEvents } from "./inspect";

/**
 * Admission takes a group's next tasks together while no other group could have its turn in
 * between (FairQueue.admitRun): the order must be exactly the one-at-a-time round-robin.
 */

const HOLD = "ar_hold";

/** A namespace whose one slot is held by a task nobody leases, and tasks waiting behind it. */
async function waitingBehindOne(settings: Record<string, number>) {
  const t = await tenant({ max_concurrent_tasks: 1, ...settings });
  expect((await call(`/v1/processors/${HOLD}`, { token: t.key, method: "PUT", body: { mode: "pull" } })).status).toBe(201);
  await createTask(t, { task_type: HOLD, priority: 0 });
  const names = new Map<string, string>();
  const make = async (name: string, body: Record<string, unknown>) => names.set((await createTask(t, { task_type: HOLD, ...body })).task_id, name);
  for (const i of [1, 2, 3]) await make(`c${i}`, { priority: 9, concurrency_key: "c" });
  for (const i of [1, 2, 3]) await make(`a${i}`, { priority: 5, concurrency_key: "a" });
  for (const i of [1, 2, 3]) await make(`b${i}`, { priority: 5, concurrency_key: "b" });
  for (const i of [1, 2]) await make(`k7_${i}`, { priority: 7 });
  for (const i of [1, 2]) await make(`k3_${i}`, { priority: 3 });
  return { t, names };
}

/** Raises the limit (one admission for every free slot) and returns who was admitted, in order. */
async function admittedOnRaise(t: Tenant, names: Map<string, string>): Promise<string[]> {
  const raised = await call(`/v1/namespaces/${t.name}`, { token: "test-admin-token", method: "PATCH", body: { settings: { max_concurrent_tasks: 100 } } });
  expect(raised.status).toBe(200);
  return (await allEvents(t)).filter((e) => e.event_type === "task.queued" && names.has(e.task_id)).map((e) => names.get(e.task_id) ?? "");
}

describe("admission in runs", () => {
  it("takes a group alone at its priority in one run, and alternates groups that share a priority", async () => {
    const { t, names } = await waitingBehindOne({});
    expect(await admittedOnRaise(t, names)).toEqual(["c1", "c2", "c3", "k7_1", "k7_2", "a1", "b1", "a2", "b2", "a3", "b3", "k3_1", "k3_2"]);
  });

  it("stops a keyed group at max_concurrent_per_key even when it is alone at its priority", async () => {
    const { t, names } = await waitingBehindOne({ max_concurrent_per_key: 2 });
    expect(await admittedOnRaise(t, names)).toEqual(["c1", "c2", "k7_1", "k7_2", "a1", "b1", "a2", "b2", "k3_1", "k3_2"]);
    const stats = (await call<{ created: number }>("/v1/tasks/stats", { token: t.key })).body;
    expect(stats.created).toBe(3);
  });
});

import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";
import type { FetchLike } from "../src/client";
import { main } from "../src/cli";
import { createTask, getTask, ORIGIN, registerHeldHandler, tenant, type Tenant } from "./helpers";

registerHeldHandler("clif_held");

const service: FetchLike = (input, init) => exports.default.fetch(new Request(input, init));

async function run(t: Tenant, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const env = { EDGE_TASKS_URL: ORIGIN, EDGE_TASKS_API_KEY: t.key };
  const code = await main(argv, {
    env,
    stdout: { isTTY: false, columns: 120, write: (s: string) => ((out += s), true) },
    stderr: { isTTY: false, columns: 120, write: (s: string) => ((err += s), true) },
    fetch: service,
  });
  return { code, out, err };
}

it("get and list say why a task waits; cancel with filters cancels in bulk; replay one or in bulk", async () => {
  const t = await tenant({ max_concurrent_tasks: 1 });
  const running = await createTask(t, { task_type: "clif_held" });
  const waiting = await createTask(t, { task_type: "clif_held", concurrency_key: "customer-7" });
  const scheduled = await createTask(t, { task_type: "clif_held", delay_seconds: 3600 });

  const got = await run(t, ["get", waiting.task_id]);
  expect(got.code).toBe(0);
  expect(got.out).toMatch(/key\s+customer-7/);
  expect(got.out).toMatch(/waiting\s+waits for a slot, #1/);
  expect((await run(t, ["get", scheduled.task_id])).out).toMatch(/waiting\s+waits until its run_at, #1, starts in ~\d+ s/);
  const listed = await run(t, ["list", "--status", "created"]);
  expect(listed.out).toContain("waits for a slot, #1");

  expect((await run(t, ["cancel", "--type", "nope_type"])).out).toContain("0 tasks cancelled");
  const bulk = await run(t, ["cancel", "--status", "created,queued,processing", "--type", "clif_held"]);
  expect(bulk.code).toBe(0);
  expect(bulk.out).toContain("3 tasks cancelled");
  expect((await getTask(t, running.task_id)).status).toBe("cancelled");

  const one = await run(t, ["replay", waiting.task_id, "--json"]);
  expect(one.code).toBe(0);
  const replayed = JSON.parse(one.out) as { replay_of_task_id: string; concurrency_key: string };
  expect(replayed).toMatchObject({ replay_of_task_id: waiting.task_id, concurrency_key: "customer-7" });
  const many = await run(t, ["replay", "--status", "cancelled", "--type", "clif_held"]);
  expect(many.code).toBe(0);
  expect(many.out).toContain("3 tasks replayed");
  expect((await run(t, ["cancel", "--key", "customer-7"])).code).toBe(0);
  await run(t, ["cancel", "--type", "clif_held"]);
});

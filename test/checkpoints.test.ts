import { describe, expect, it } from "vitest";
import { registerHandler } from "../src/handlers/registry";
import type { JsonValue } from "../src/tasks/model";
import { call, createTask, eventually, Latch, sleep, tenant, waitForStatus } from "./helpers";
import { advance, query, taskEvents } from "./inspect";

const invocations = new Map<string, { attempt: number; checkpoint: JsonValue | null }[]>();
const latch = new Latch();

registerHandler({
  type: "ckpt_count",
  run: async (ctx) => {
    const seen = invocations.get(ctx.task.task_id) ?? [];
    seen.push({ attempt: ctx.attempt, checkpoint: ctx.checkpoint });
    invocations.set(ctx.task.task_id, seen);
    const n = typeof ctx.checkpoint === "number" ? ctx.checkpoint : 0;
    await ctx.progress({ processed: n, total: 3 });
    // The first attempt "crashes" (stops reporting) after its second slice when asked to.
    if (ctx.task.inputs.crash === true && ctx.attempt === 1 && n === 2) {
      await latch.hold(ctx.task.task_id, ctx.signal);
      return {};
    }
    if (n < 3) return ctx.yield(n + 1);
    return { slices: seen.length, finished_at: n };
  },
});

/** Checkpoints (steps done so far) with which each invocation of a `ckpt_slices` task started. */
const sliceStarts = new Map<string, number[]>();
const SLICED_STEPS = 20;

// Works in 50 ms steps until its time slice is used up, then yields; about 1 s of work in all.
registerHandler({
  type: "ckpt_slices",
  run: async (ctx) => {
    let steps = typeof ctx.checkpoint === "number" ? ctx.checkpoint : 0;
    sliceStarts.set(ctx.task.task_id, [...(sliceStarts.get(ctx.task.task_id) ?? []), steps]);
    while (steps < SLICED_STEPS) {
      await sleep(50);
      steps++;
      if (steps < SLICED_STEPS && ctx.shouldYield()) return ctx.yield(steps);
    }
    return { steps, attempt: ctx.attempt };
  },
});

describe("checkpoints", () => {
  // This project binds HANDLER_SLICE_MS=1 (vitest.config.ts); with the real 10 s slice the work
  // would fit in one invocation.
  it("tells a handler to yield once its time slice is used, and goes on from the checkpoint", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "ckpt_slices" });
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.outputs).toEqual({ steps: SLICED_STEPS, attempt: 1 });
    const starts = sliceStarts.get(task.task_id) ?? [];
    expect(starts.length).toBeGreaterThan(1);
    expect(starts[0]).toBe(0);
    // Every invocation starts where the one before it stopped: strictly later, never redoing a step.
    for (let i = 1; i < starts.length; i++) expect(starts[i]).toBeGreaterThan(starts[i - 1] ?? 0);
  });

  it("continues an attempt in new invocations from its checkpoint, under the same attempt", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "ckpt_count" });
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.outputs).toEqual({ slices: 4, finished_at: 3 });
    expect(done.attempt).toBe(1);
    expect(invocations.get(task.task_id)).toEqual([
      { attempt: 1, checkpoint: null },
      { attempt: 1, checkpoint: 1 },
      { attempt: 1, checkpoint: 2 },
      { attempt: 1, checkpoint: 3 },
    ]);
    const transitions = (await taskEvents(t, task.task_id)).map((e) => e.event_type).filter((type) => type !== "task.progress");
    expect(transitions).toEqual(["task.created", "task.queued", "task.processing", "task.completed"]);
  });

  it("resumes from the last checkpoint when an attempt dies mid-way, without redoing its slices", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "ckpt_count", inputs: { crash: true } });
    await eventually(async () => (latch.entered.has(task.task_id) ? true : undefined));
    // The consumer "crashed": nothing renews the lease any more.
    const heartbeatless = await query<{ continuation: number }>(t, "SELECT continuation FROM tasks WHERE task_id = ?", task.task_id);
    expect(heartbeatless[0]?.continuation).toBe(0);
    await advance(t, 61_000);
    await eventually(async () => ((await call(`/v1/tasks/${task.task_id}`, { token: t.key })).body.attempt === 2 ? true : undefined));
    // The stuck invocation finally returns; its report is fenced off, and the queue moves on.
    latch.release(task.task_id);
    await advance(t, 10_000);
    const done = await waitForStatus(t, task.task_id, "completed");
    expect(done.attempt).toBe(2);
    expect(invocations.get(task.task_id)?.map((i) => [i.attempt, i.checkpoint])).toEqual([
      [1, null],
      [1, 1],
      [1, 2],
      [2, 2],
      [2, 3],
    ]);
  });
});

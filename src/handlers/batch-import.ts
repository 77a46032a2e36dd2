import { z } from "@hono/zod-openapi";
import { createObjects, NewObject } from "../db/objects";
import { sha256Hex } from "../ids";
import { registerHandler, TaskFailure } from "./registry";

const Inputs = z.object({ bucket_id: z.string().min(1).max(64), staging_id: z.string().min(1).max(64), count: z.number().int().min(1).max(10_000) }).strict();
const State = z.object({ next: z.number().int(), tasks_created: z.number().int() });
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
/** Objects made per round trip to D1 and the Durable Object. */
const GROUP = 50;

/** The id of the n-th object of a batch: the same on every run, so a resumed import never duplicates. */
async function objectIdFor(stagingId: string, index: number): Promise<string> {
  const hex = await sha256Hex(`${stagingId}:${index}`);
  let id = "";
  for (let i = 0; i < 20; i++) id += ALPHABET[parseInt(hex.slice(i * 2, i * 2 + 2), 16) % 36];
  return `obj_${id}`;
}

/**
 * Creates the staged objects in order, each with the object_create tasks of the bucket's
 * collections as its children, checkpointing as it goes: a crash or a yield resumes at the next
 * object, and an object made twice is the same object (its id and task keys are derived).
 */
registerHandler({
  type: "batch_import",
  inputs: Inputs,
  async run(ctx) {
    const input = Inputs.parse(ctx.task.inputs);
    const db = ctx.env.DB;
    const ns = ctx.task.namespace_id;
    const bucket = await db.prepare("SELECT bucket_id FROM buckets WHERE namespace_id = ? AND bucket_id = ?").bind(ns, input.bucket_id).first();
    if (!bucket) throw new TaskFailure("bucket_not_found", `bucket ${input.bucket_id} no longer exists`, false);
    let state = ctx.checkpoint === null ? { next: 0, tasks_created: 0 } : State.parse(ctx.checkpoint);
    while (state.next < input.count) {
      const chunk = await db
        .prepare("SELECT first_index, payload FROM batch_staging WHERE staging_id = ? AND first_index <= ? ORDER BY first_index DESC LIMIT 1")
        .bind(input.staging_id, state.next)
        .first<{ first_index: number; payload: string }>();
      if (!chunk) throw new TaskFailure("staging_missing", "the staged payload of this import is gone", false);
      const objects = z.array(NewObject).parse(JSON.parse(chunk.payload));
      for (let i = state.next - chunk.first_index; i < objects.length; i += GROUP) {
        const group = objects.slice(i, i + GROUP);
        const items = await Promise.all(group.map(async (object, j) => ({ objectId: await objectIdFor(input.staging_id, state.next + j), input: object })));
        const made = await createObjects(ctx.env, ns, ctx.origin, input.bucket_id, items, ctx.task.task_id);
        state = { next: state.next + group.length, tasks_created: state.tasks_created + made.reduce((n, m) => n + m.task_ids.length, 0) };
        await ctx.progress({ processed: state.next, total: input.count, percent: (100 * state.next) / input.count, message: `${state.next} objects` });
        if (state.next < input.count && ctx.shouldYield()) return ctx.yield(state);
      }
    }
    await db.prepare("DELETE FROM batch_staging WHERE staging_id = ?").bind(input.staging_id).run();
    await ctx.log(`created ${input.count} objects and ${state.tasks_created} object_create tasks`);
    return { objects_created: input.count, tasks_created: state.tasks_created };
  },
});

import { z } from "@hono/zod-openapi";
import { createObjects } from "../dataplane/objects";
import { bucketExists } from "../db/catalog";
import { bindStaging, StagingCorrupt, stagedChunk, stagingRemoval } from "../db/staging";
import { sha256Hex } from "../ids";
import { defineHandler, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS } from "../tasks/builtin-types";

const State = z.object({ next: z.number().int().min(0), tasks_created: z.number().int().min(0) });
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
/**
 * Objects made per round trip to D1 and the Durable Object: two D1 batches and one object call
 * for the lot (the staged chunk holding them bounds it too, at 900 KiB of objects).
 */
const GROUP = 500;

/**
 * The id of the n-th object of an import: the same on every run of the task, so a resumed import
 * never duplicates, and derived from the namespace and the task as well as the staging, so no
 * import can ever name an object of another namespace or of another import.
 */
async function objectIdFor(namespaceId: string, taskId: string, stagingId: string, index: number): Promise<string> {
  const hex = await sha256Hex(`${namespaceId}:${taskId}:${stagingId}:${index}`);
  let id = "";
  for (let i = 0; i < 20; i++) id += ALPHABET[parseInt(hex.slice(i * 2, i * 2 + 2), 16) % 36];
  return `obj_${id}`;
}

/**
 * Creates the staged objects in order, each with the object_create tasks of the bucket's
 * collections as its children, checkpointing as it goes: a crash or a yield resumes at the next
 * object, and an object made twice is the same object (its id and task keys are derived).
 * Every round makes at least one object or fails: staging that does not cover the object the
 * import needs next fails the task for good.
 */
export const batchImport = defineHandler({
  type: "batch_import",
  inputs: BUILTIN_TASK_INPUTS.batch_import,
  async run(ctx) {
    const input = ctx.inputs;
    const db = ctx.env.DB;
    const ns = ctx.task.namespace_id;
    const owner = { namespaceId: ns, taskId: ctx.task.task_id, stagingId: input.staging_id };
    if (!(await bucketExists(db, ns, input.bucket_id))) throw new TaskFailure("bucket_not_found", `bucket ${input.bucket_id} no longer exists`, false);
    // Staging of this namespace that no task holds yet is this task's: its request may have died
    // before binding it. Staging of another task, or of another namespace, is never read.
    await bindStaging(db, ns, input.staging_id, ctx.task.task_id);
    let state = ctx.checkpoint === null ? { next: 0, tasks_created: 0 } : State.parse(ctx.checkpoint);
    while (state.next < input.count) {
      ctx.signal.throwIfAborted();
      const chunk = await readChunk(db, owner, state.next);
      if (state.next - chunk.firstIndex >= chunk.objects.length) {
        throw new TaskFailure("staging_invalid", `the staged payload holds no object ${state.next} of the ${input.count} this import was created for`, false);
      }
      // Each round makes at least one object, so the loop ends; `count` caps staging that holds more.
      while (state.next < input.count && state.next - chunk.firstIndex < chunk.objects.length) {
        const offset = state.next - chunk.firstIndex;
        const group = chunk.objects.slice(offset, offset + Math.min(GROUP, input.count - state.next));
        const items = await Promise.all(group.map(async (object, j) => ({ objectId: await objectIdFor(ns, ctx.task.task_id, input.staging_id, state.next + j), input: object })));
        const made = await createObjects(ctx.env, ns, ctx.origin, input.bucket_id, items, ctx.task.task_id);
        state = { next: state.next + group.length, tasks_created: state.tasks_created + made.reduce((n, m) => n + m.task_ids.length, 0) };
        await ctx.progress({ processed: state.next, total: input.count, percent: (100 * state.next) / input.count, message: `${state.next} objects` });
        if (state.next < input.count && ctx.shouldYield()) return ctx.yield(state);
      }
    }
    await stagingRemoval(db, ns, ctx.task.task_id, input.staging_id).run();
    await ctx.log(`created ${input.count} objects and ${state.tasks_created} object_create tasks`);
    return { objects_created: input.count, tasks_created: state.tasks_created };
  },
});

/** The staged chunk holding object `index` or the last before it; a missing or corrupt one fails the task for good. */
async function readChunk(db: D1Database, owner: { namespaceId: string; taskId: string; stagingId: string }, index: number) {
  try {
    const chunk = await stagedChunk(db, owner, index);
    if (!chunk) throw new TaskFailure("staging_missing", "the staged payload of this import is gone", false);
    return chunk;
  } catch (err) {
    if (err instanceof StagingCorrupt) throw new TaskFailure("staging_invalid", err.message, false);
    throw err;
  }
}

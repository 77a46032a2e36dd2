import { z } from "@hono/zod-openapi";
import { collectionVectors } from "../db/dataplane";
import { lloydStep, prng, seedCentroids } from "../embed/kmeans";
import { setClusterIds } from "../db/documents";
import { collectionExists } from "./documents";
import { defineHandler, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS } from "../tasks/builtin-types";

const State = z.object({ iteration: z.number().int(), centres: z.array(z.array(z.number())), inertia: z.number(), converged: z.boolean() });

const RESTARTS = 5;
const TRIAL_STEPS = 3;

/**
 * k-means++ seeding from several seeds derived from `seed`, each refined for a few steps; the one
 * with the lowest inertia wins. One seeding alone can merge two clusters and split a third.
 */
function bestSeeding(vectors: Float32Array[], k: number, seed: number): number[][] {
  let best: { centres: Float32Array[]; inertia: number } | null = null;
  for (let r = 0; r < RESTARTS; r++) {
    let centres = seedCentroids(vectors, k, prng(seed * RESTARTS + r));
    const labels = new Int32Array(vectors.length).fill(-1);
    let inertia = Infinity;
    for (let step = 0; step < TRIAL_STEPS; step++) ({ centres, inertia } = lloydStep(vectors, centres, labels));
    if (!best || inertia < best.inertia) best = { centres, inertia };
  }
  return (best?.centres ?? []).map((c) => Array.from(c));
}

/** k-means with k-means++ seeding over a collection's document vectors; deterministic for a seed. */
export const clustering = defineHandler({
  type: "clustering",
  inputs: BUILTIN_TASK_INPUTS.clustering,
  async run(ctx) {
    const input = ctx.inputs;
    const maxIterations = input.max_iterations ?? 50;
    const db = ctx.env.DB;
    if (!(await collectionExists(db, ctx.task.namespace_id, input.collection_id))) {
      throw new TaskFailure("collection_not_found", `collection ${input.collection_id} no longer exists`, false);
    }
    const { ids, vectors } = await collectionVectors(db, ctx.task.namespace_id, input.collection_id);
    if (vectors.length < input.k) throw new TaskFailure("too_few_documents", `k = ${input.k} needs at least ${input.k} documents; the collection has ${vectors.length}`, false);
    let state = ctx.checkpoint === null ? { iteration: 0, centres: bestSeeding(vectors, input.k, input.seed ?? 0), inertia: 0, converged: false } : State.parse(ctx.checkpoint);
    let centres: Float32Array[] = state.centres.map((c) => Float32Array.from(c));
    const labels = new Int32Array(vectors.length).fill(-1);
    while (!state.converged && state.iteration < maxIterations) {
      ctx.signal.throwIfAborted();
      const step = lloydStep(vectors, centres, labels);
      // Converged when a step leaves every centre where it was: decided from the centres alone,
      // which the checkpoint keeps, so a run that yields and resumes stops at the same iteration.
      const converged = step.centres.every((c, i) => c.every((x, j) => x === centres[i]?.[j]));
      centres = step.centres;
      state = { iteration: state.iteration + 1, centres: centres.map((c) => Array.from(c)), inertia: step.inertia, converged };
      await ctx.progress({ processed: state.iteration, total: maxIterations, percent: (100 * state.iteration) / maxIterations, message: `iteration ${state.iteration}, inertia ${step.inertia.toFixed(3)}` });
      if (!state.converged && state.iteration < maxIterations && ctx.shouldYield()) return ctx.yield(state);
    }
    // A last report before the write: a task cancelled meanwhile stops here, writing nothing.
    await ctx.progress({ message: "writing cluster ids" });
    // Final assignment with the final centres.
    const final = lloydStep(vectors, centres, labels);
    const sizes = new Array<number>(input.k).fill(0);
    labels.forEach((l) => (sizes[l] = (sizes[l] ?? 0) + 1));
    await setClusterIds(db, ctx.task.namespace_id, ids, labels);
    await ctx.log(`k-means: ${state.iteration} iterations, inertia ${final.inertia.toFixed(4)}, clusters ${sizes.join("/")}`);
    return { k: input.k, iterations: state.iteration, inertia: final.inertia, cluster_sizes: sizes };
  },
});

import { z } from "@hono/zod-openapi";
import { collectionVectors } from "../db/dataplane";
import { modelForTuning, saveTunedModel } from "../db/documents";
import { prng } from "../embed/kmeans";
import { accuracy, newModel, type SoftmaxModel, trainEpoch } from "../embed/softmax";
import { defineHandler, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS } from "../tasks/builtin-types";

const State = z.object({ epoch: z.number().int(), weights: z.array(z.number()), losses: z.array(z.number()) });

/** Trains a softmax classifier on a collection's vectors against metadata[label_field]. */
export const modelTuning = defineHandler({
  type: "model_tuning",
  inputs: BUILTIN_TASK_INPUTS.model_tuning,
  async run(ctx) {
    const input = ctx.inputs;
    const epochs = input.epochs ?? 20;
    const db = ctx.env.DB;
    const model = await modelForTuning(db, ctx.task.namespace_id, input.model_id);
    if (!model) throw new TaskFailure("model_not_found", `model ${input.model_id} no longer exists`, false);
    const data = await collectionVectors(db, ctx.task.namespace_id, model.collection_id);
    const examples = data.vectors
      .map((x, i) => ({ x, label: data.metadata[i]?.[model.label_field] }))
      .filter((e): e is { x: Float32Array; label: string | number } => typeof e.label === "string" || typeof e.label === "number")
      .map((e) => ({ x: e.x, label: String(e.label) }));
    const labels = [...new Set(examples.map((e) => e.label))].sort();
    if (labels.length < 2) throw new TaskFailure("too_few_labels", `documents need at least two values of metadata.${model.label_field}`, false);
    // A seeded shuffle, then the holdout split: the same data and seed give the same model.
    const random = prng(input.seed ?? 0);
    const order = examples.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j] ?? 0, order[i] ?? 0];
    }
    const holdoutSize = Math.floor(examples.length * (input.holdout_fraction ?? 0.2));
    const holdout = order.slice(0, holdoutSize).map((i) => examples[i]).filter((e) => e !== undefined);
    const train = order.slice(holdoutSize).map((i) => examples[i]).filter((e) => e !== undefined);
    const dims = data.vectors[0]?.length ?? 0;
    const classifier: SoftmaxModel = newModel(labels, dims);
    let state = ctx.checkpoint === null ? { epoch: 0, weights: classifier.weights, losses: [] as number[] } : State.parse(ctx.checkpoint);
    classifier.weights = state.weights;
    const xs = train.map((e) => e.x);
    const ys = train.map((e) => labels.indexOf(e.label));
    while (state.epoch < epochs) {
      ctx.signal.throwIfAborted();
      const loss = trainEpoch(classifier, xs, ys, input.learning_rate ?? 2);
      state = { epoch: state.epoch + 1, weights: classifier.weights, losses: [...state.losses, loss] };
      await ctx.progress({ processed: state.epoch, total: epochs, percent: (100 * state.epoch) / epochs, message: `epoch ${state.epoch}: loss ${loss.toFixed(4)}` });
      if (state.epoch < epochs && ctx.shouldYield()) return ctx.yield(state);
    }
    const trainAccuracy = accuracy(classifier, xs, ys);
    const holdoutAccuracy = accuracy(classifier, holdout.map((e) => e.x), holdout.map((e) => labels.indexOf(e.label)));
    const metrics = { labels, train_accuracy: trainAccuracy, holdout_accuracy: holdoutAccuracy, loss_curve: state.losses };
    await saveTunedModel(db, ctx.task.namespace_id, model.model_id, classifier, metrics);
    await ctx.log(`trained on ${train.length}, held out ${holdout.length}: accuracy ${trainAccuracy.toFixed(3)} / ${holdoutAccuracy.toFixed(3)}`);
    return metrics;
  },
});

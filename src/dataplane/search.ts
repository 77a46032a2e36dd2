import { embedQuery, aiBinding } from "../embed/extractor";
import { DimensionMismatch, searchCache } from "../embed/search";
import { probabilities, type SoftmaxModel } from "../embed/softmax";
import { ApiError } from "../errors";
import type { FeatureExtractor } from "../tasks/extractor-config";

/**
 * What the API asks of the embedding side of a collection: search it, forget its cache, check
 * that its extractor can run here, and predict with a model trained on it.
 */

/** The closest documents of a collection to `query`, best first (SPEC §8); 409 when the query's dimensions differ. */
export async function searchCollection(
  env: Env,
  collection: { collection_id: string; feature_extractor: FeatureExtractor },
  vectorsVersion: number,
  query: string,
  limit: number,
) {
  const vector = await embedQuery(env, collection.feature_extractor, query);
  try {
    return await searchCache.search(env.DB, collection.collection_id, vectorsVersion, vector, limit);
  } catch (err) {
    if (err instanceof DimensionMismatch) throw new ApiError("conflict", err.message);
    throw err;
  }
}

/** Drops a deleted collection's search cache in this isolate. */
export const forgetCollection = (collectionId: string): void => searchCache.drop(collectionId);

/** Whether this deployment can run `extractor` (a Workers AI one needs the AI binding). */
export const extractorAvailable = (env: Env, extractor: FeatureExtractor): boolean => extractor.type !== "workers_ai" || aiBinding(env) !== undefined;

/** A trained classifier's label and per-label probabilities for `text`, embedded with the collection's extractor. */
export async function predictLabel(env: Env, extractor: FeatureExtractor, weights: string, text: string): Promise<{ label: string; scores: Record<string, number> }> {
  const classifier = JSON.parse(weights) as SoftmaxModel;
  const p = probabilities(classifier, await embedQuery(env, extractor, text));
  const best = p.indexOf(Math.max(...p));
  return { label: classifier.labels[best] ?? "", scores: Object.fromEntries(classifier.labels.map((l, i) => [l, p[i] ?? 0])) };
}

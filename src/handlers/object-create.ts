import { getObjectForWork } from "../db/dataplane";
import { collectionDimensions, collectionExtractor, dimensionsMismatch, embedForTask, inputsForWork, upsertDocuments, upsertDocumentsOfCollections } from "./documents";
import type { FeatureExtractor } from "../tasks/extractor-config";
import { type BatchOutcome, defineHandler, type HandlerContext, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS, type BuiltinInputs } from "../tasks/builtin-types";
import type { JsonObject } from "../tasks/model";

type Input = BuiltinInputs["object_create"];

const objectGone = (objectId: string) => new TaskFailure("object_not_found", `object ${objectId} no longer exists`, false);
const collectionGone = (collectionId: string) => new TaskFailure("collection_not_found", `collection ${collectionId} no longer exists`, false);

export const objectCreate = defineHandler({
  type: "object_create",
  inputs: BUILTIN_TASK_INPUTS.object_create,
  async run(ctx) {
    const { object_id, collection_id } = ctx.inputs;
    const ns = ctx.task.namespace_id;
    const object = await getObjectForWork(ctx.env.DB, ns, object_id);
    if (!object) throw objectGone(object_id);
    const extractor = await collectionExtractor(ctx.env.DB, ns, collection_id);
    if (!extractor) throw collectionGone(collection_id);
    const [vector] = await embedForTask(ctx.env, extractor, [object.content], await collectionDimensions(ctx.env.DB, ns, collection_id));
    if (!vector) throw new Error("the extractor returned no vector");
    const [documentId] = await upsertDocuments(ctx.env.DB, ns, collection_id, [{ objectId: object_id, metadata: object.metadata, vector }]);
    await ctx.log(`document ${documentId} of object ${object_id} indexed in ${collection_id}`);
    await ctx.progress({ percent: 100, message: "indexed" });
    return { document_id: documentId };
  },
  runBatch: indexObjects,
});

/**
 * object_create for the tasks of one namespace that arrived together: the objects and their
 * collections are read in one round trip to D1, the texts of each collection embedded in one
 * extractor call, and the documents written in one D1 batch. Each task fails alone (its object or collection gone, its
 * collection's extractor failing); a task whose attempt ended is left out.
 */
async function indexObjects(ctxs: HandlerContext<Input>[]): Promise<BatchOutcome[]> {
  const first = ctxs[0];
  if (!first) return [];
  const env = first.env;
  const ns = first.task.namespace_id;
  const outcomes: BatchOutcome[] = ctxs.map(() => undefined);
  const inputs: (Input | null)[] = ctxs.map((ctx, i) => {
    if (ctx.task.namespace_id === ns) return ctx.inputs;
    outcomes[i] = new Error("a batch of tasks of several namespaces");
    return null;
  });
  const live = (i: number): Input | null => (outcomes[i] === undefined && !ctxs[i]?.signal.aborted ? (inputs[i] ?? null) : null);
  const wanted = ctxs.map((_, i) => live(i)).filter((input): input is Input => input !== null);
  const { objects, collections } = await inputsForWork(env.DB, ns, [...new Set(wanted.map((w) => w.object_id))], [...new Set(wanted.map((w) => w.collection_id))]);
  // The tasks to index, by collection; and by extractor, the distinct texts they need.
  const byCollection = new Map<string, number[]>();
  ctxs.forEach((_, i) => {
    const input = live(i);
    if (!input) return;
    if (!objects.has(input.object_id)) outcomes[i] = objectGone(input.object_id);
    else if (!collections.has(input.collection_id)) outcomes[i] = collectionGone(input.collection_id);
    else {
      const members = byCollection.get(input.collection_id);
      if (members) members.push(i);
      else byCollection.set(input.collection_id, [i]);
    }
  });
  // One extractor call per extractor, each text once: an object indexed into several collections
  // of the same extractor (an import into two) is embedded once, not once per collection.
  const byExtractor = new Map<string, { extractor: FeatureExtractor; texts: Set<string> }>();
  for (const [collectionId, members] of byCollection) {
    const { extractor } = collections.get(collectionId)!;
    const key = JSON.stringify(extractor);
    const entry = byExtractor.get(key) ?? { extractor, texts: new Set<string>() };
    for (const i of members) entry.texts.add(objects.get(inputs[i]!.object_id)!.content);
    byExtractor.set(key, entry);
  }
  const embedded = new Map<string, Promise<Map<string, Float32Array | undefined>>>();
  for (const [key, { extractor, texts }] of byExtractor) {
    const list = [...texts];
    const vectors = embedForTask(env, extractor, list).then((v) => new Map(list.map((text, j) => [text, v[j]])));
    vectors.catch(() => undefined);
    embedded.set(key, vectors);
  }
  const documents: { index: number; collectionId: string; objectId: string; metadata: JsonObject; vector: Float32Array }[] = [];
  for (const [collectionId, members] of byCollection) {
    const collection = collections.get(collectionId)!;
    try {
      const vectors = await embedded.get(JSON.stringify(collection.extractor))!;
      for (const i of members) {
        const objectId = inputs[i]!.object_id;
        const vector = vectors.get(objects.get(objectId)!.content);
        if (!vector) outcomes[i] = new Error("the extractor returned no vector");
        else if (collection.dimensions !== null && vector.length !== collection.dimensions) outcomes[i] = dimensionsMismatch(vector.length, collection.dimensions);
        else documents.push({ index: i, collectionId, objectId, metadata: objects.get(objectId)!.metadata, vector });
      }
    } catch (err) {
      for (const i of members) outcomes[i] = err instanceof Error ? err : new Error(String(err));
    }
  }
  const ids = await upsertDocumentsOfCollections(env.DB, ns, documents);
  // Each task logs on its own. The lines are not awaited: sent in the same turn as the
  // completions that follow, they reach the object in one call with them, each folded into its
  // task's completion (ReportBatcher). A refused line means the attempt ended, and its
  // completion is refused just the same.
  documents.forEach((d, k) => {
    const documentId = ids[k]!;
    ctxs[d.index]!.log(`document ${documentId} of object ${d.objectId} indexed in ${d.collectionId}`).catch(() => undefined);
    outcomes[d.index] = { document_id: documentId };
  });
  return outcomes;
}

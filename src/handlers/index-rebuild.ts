import { z } from "@hono/zod-openapi";
import { countSourceObjects, removeOrphanDocuments, sourceObjectsPage } from "../db/documents";
import { collectionDimensions, collectionExtractor, embedForTask, upsertDocuments } from "./documents";
import type { JsonObject } from "../tasks/model";
import { defineHandler, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS } from "../tasks/builtin-types";

const State = z.object({ after_ms: z.number(), after_id: z.string(), indexed: z.number().int() });
const PAGE = 200;

export const indexRebuild = defineHandler({
  type: "index_rebuild",
  inputs: BUILTIN_TASK_INPUTS.index_rebuild,
  async run(ctx) {
    const { collection_id } = ctx.inputs;
    const ns = ctx.task.namespace_id;
    const db = ctx.env.DB;
    const extractor = await collectionExtractor(db, ns, collection_id);
    if (!extractor) throw new TaskFailure("collection_not_found", `collection ${collection_id} no longer exists`, false);
    const total = await countSourceObjects(db, ns, collection_id);
    let state = ctx.checkpoint === null ? { after_ms: 0, after_id: "", indexed: 0 } : State.parse(ctx.checkpoint);
    // Each page starts strictly after the last object of the one before, so the loop ends.
    for (;;) {
      ctx.signal.throwIfAborted();
      const results = await sourceObjectsPage(db, ns, collection_id, { ms: state.after_ms, id: state.after_id }, PAGE);
      // One extractor call per page (Workers AI batches of 100 within it), one D1 batch of upserts.
      const vectors = await embedForTask(ctx.env, extractor, results.map((o) => o.content), await collectionDimensions(db, ns, collection_id));
      await upsertDocuments(
        db,
        ns,
        collection_id,
        results.map((o, i) => ({ objectId: o.object_id, metadata: JSON.parse(o.metadata) as JsonObject, vector: vectors[i] ?? new Float32Array() })),
      );
      const last = results[results.length - 1];
      if (last) state = { after_ms: last.created_ms, after_id: last.object_id, indexed: state.indexed + results.length };
      await ctx.progress({ processed: state.indexed, total, percent: total === 0 ? 100 : Math.min(99, (100 * state.indexed) / total) });
      if (results.length < PAGE) break;
      if (ctx.shouldYield()) return ctx.yield(state);
    }
    const documentsRemoved = await removeOrphanDocuments(db, ns, collection_id);
    await ctx.log(`re-embedded ${state.indexed} objects, removed ${documentsRemoved} documents whose object is gone`);
    return { documents_indexed: state.indexed, documents_removed: documentsRemoved };
  },
});

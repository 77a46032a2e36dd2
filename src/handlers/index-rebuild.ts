import { z } from "@hono/zod-openapi";
import { collectionDimensions, collectionExtractor, embedForTask, upsertDocuments } from "./documents";
import type { JsonObject } from "../tasks/model";
import { parseInputs, registerHandler, TaskFailure } from "./registry";

const Inputs = z.object({ collection_id: z.string().min(1).max(64) }).strict();
const State = z.object({ after_ms: z.number(), after_id: z.string(), indexed: z.number().int() });
const PAGE = 200;

registerHandler({
  type: "index_rebuild",
  inputs: Inputs,
  async run(ctx) {
    const { collection_id } = parseInputs(Inputs, ctx.task.inputs);
    const ns = ctx.task.namespace_id;
    const db = ctx.env.DB;
    const extractor = await collectionExtractor(db, ns, collection_id);
    if (!extractor) throw new TaskFailure("collection_not_found", `collection ${collection_id} no longer exists`, false);
    const total = (await db
      .prepare(
        `SELECT COUNT(*) AS n FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
         WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1 AND o.state = 'ready'`,
      )
      .bind(ns, collection_id)
      .first<number>("n")) ?? 0;
    let state = ctx.checkpoint === null ? { after_ms: 0, after_id: "", indexed: 0 } : State.parse(ctx.checkpoint);
    // Each page starts strictly after the last object of the one before, so the loop ends.
    for (;;) {
      ctx.signal.throwIfAborted();
      const { results } = await db
        .prepare(
          `SELECT o.object_id, o.content, o.metadata, o.created_ms FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
           WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1 AND o.state = 'ready' AND (o.created_ms, o.object_id) > (?3, ?4)
           ORDER BY o.created_ms, o.object_id LIMIT ?5`,
        )
        .bind(ns, collection_id, state.after_ms, state.after_id, PAGE)
        .all<{ object_id: string; content: string; metadata: string; created_ms: number }>();
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
    // Counted from RETURNING: D1's `changes` also counts the rows the delete trigger writes.
    const { results: removed } = await db
      .prepare(
        `DELETE FROM documents WHERE namespace_id = ?1 AND collection_id = ?2 AND object_id NOT IN
           (SELECT o.object_id FROM objects o JOIN collection_sources s ON s.bucket_id = o.bucket_id
            WHERE s.namespace_id = ?1 AND s.collection_id = ?2 AND o.namespace_id = ?1)
         RETURNING document_id`,
      )
      .bind(ns, collection_id)
      .all<{ document_id: string }>();
    const documentsRemoved = removed.length;
    await ctx.log(`re-embedded ${state.indexed} objects, removed ${documentsRemoved} documents whose object is gone`);
    return { documents_indexed: state.indexed, documents_removed: documentsRemoved };
  },
});

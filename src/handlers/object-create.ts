import { z } from "@hono/zod-openapi";
import { getObjectForWork } from "../db/dataplane";
import { collectionDimensions, collectionExtractor, embedForTask, upsertDocuments } from "./documents";
import { parseInputs, registerHandler, TaskFailure } from "./registry";

const Inputs = z.object({ object_id: z.string().min(1).max(64), collection_id: z.string().min(1).max(64) }).strict();

registerHandler({
  type: "object_create",
  inputs: Inputs,
  async run(ctx) {
    const { object_id, collection_id } = parseInputs(Inputs, ctx.task.inputs);
    const ns = ctx.task.namespace_id;
    const object = await getObjectForWork(ctx.env.DB, ns, object_id);
    if (!object) throw new TaskFailure("object_not_found", `object ${object_id} no longer exists`, false);
    const extractor = await collectionExtractor(ctx.env.DB, ns, collection_id);
    if (!extractor) throw new TaskFailure("collection_not_found", `collection ${collection_id} no longer exists`, false);
    const [vector] = await embedForTask(ctx.env, extractor, [object.content], await collectionDimensions(ctx.env.DB, ns, collection_id));
    if (!vector) throw new Error("the extractor returned no vector");
    const [documentId] = await upsertDocuments(ctx.env.DB, ns, collection_id, [{ objectId: object_id, metadata: object.metadata, vector }]);
    await ctx.log(`document ${documentId} of object ${object_id} indexed in ${collection_id}`);
    await ctx.progress({ percent: 100, message: "indexed" });
    return { document_id: documentId };
  },
});

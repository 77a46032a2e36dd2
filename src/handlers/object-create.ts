import { z } from "@hono/zod-openapi";
import { getObjectForWork } from "../db/dataplane";
import { collectionExists, upsertDocument } from "./documents";
import { registerHandler, TaskFailure } from "./registry";

const Inputs = z.object({ object_id: z.string().min(1).max(64), collection_id: z.string().min(1).max(64) }).strict();

registerHandler({
  type: "object_create",
  inputs: Inputs,
  async run(ctx) {
    const { object_id, collection_id } = Inputs.parse(ctx.task.inputs);
    const ns = ctx.task.namespace_id;
    const object = await getObjectForWork(ctx.env.DB, ns, object_id);
    if (!object) throw new TaskFailure("object_not_found", `object ${object_id} no longer exists`, false);
    if (!(await collectionExists(ctx.env.DB, ns, collection_id))) throw new TaskFailure("collection_not_found", `collection ${collection_id} no longer exists`, false);
    const documentId = await upsertDocument(ctx.env.DB, ns, collection_id, object_id, object.content, object.metadata);
    await ctx.log(`document ${documentId} of object ${object_id} indexed in ${collection_id}`);
    await ctx.progress({ percent: 100, message: "indexed" });
    return { document_id: documentId };
  },
});

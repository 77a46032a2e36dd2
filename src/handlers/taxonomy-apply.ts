import { z } from "@hono/zod-openapi";
import { collectionVectors } from "../db/dataplane";
import { dot, normalize } from "../embed/embedder";
import { setDocumentTaxonomies, taxonomyNodesJson } from "../db/documents";
import { collectionDimensions, collectionExtractor, embedForTask } from "./documents";
import { defineHandler, TaskFailure } from "./registry";
import { BUILTIN_TASK_INPUTS } from "../tasks/builtin-types";

const Nodes = z.array(z.object({ label: z.string(), examples: z.array(z.string()) }));

/** Labels each document with its nearest taxonomy node: the centroid of the node's examples. */
export const taxonomyApply = defineHandler({
  type: "taxonomy_apply",
  inputs: BUILTIN_TASK_INPUTS.taxonomy_apply,
  async run(ctx) {
    const input = ctx.inputs;
    const db = ctx.env.DB;
    const ns = ctx.task.namespace_id;
    const extractor = await collectionExtractor(db, ns, input.collection_id);
    if (!extractor) throw new TaskFailure("collection_not_found", `collection ${input.collection_id} no longer exists`, false);
    const taxonomy = await taxonomyNodesJson(db, ns, input.taxonomy_id);
    if (taxonomy === null) throw new TaskFailure("taxonomy_not_found", `taxonomy ${input.taxonomy_id} no longer exists`, false);
    const nodes = Nodes.parse(JSON.parse(taxonomy));
    // The examples of every node embedded together, with the collection's own extractor.
    const examples = await embedForTask(ctx.env, extractor, nodes.flatMap((n) => n.examples), await collectionDimensions(db, ns, input.collection_id));
    let next = 0;
    const centroids = nodes.map((node) => {
      const sum = new Float32Array(examples[0]?.length ?? 0);
      for (const vector of examples.slice(next, (next += node.examples.length))) vector.forEach((v, i) => (sum[i] = (sum[i] ?? 0) + v));
      return normalize(sum);
    });
    const { ids, vectors } = await collectionVectors(db, ns, input.collection_id);
    const minScore = input.min_score ?? 0;
    const counts: Record<string, number> = Object.fromEntries(nodes.map((n) => [n.label, 0]));
    let unlabeled = 0;
    const updates = vectors.map((v, i) => {
      let best = -1;
      let bestScore = -Infinity;
      centroids.forEach((c, j) => {
        const score = dot(v, c);
        if (score > bestScore) {
          bestScore = score;
          best = j;
        }
      });
      const node = nodes[best];
      const label = node && bestScore >= minScore ? { taxonomy_id: input.taxonomy_id, label: node.label, score: bestScore } : null;
      if (label) counts[label.label] = (counts[label.label] ?? 0) + 1;
      else unlabeled++;
      return { documentId: ids[i] ?? "", label: label ? JSON.stringify(label) : null };
    });
    await ctx.progress({ percent: 50, message: `labelled ${vectors.length} documents`, processed: vectors.length, total: vectors.length });
    await setDocumentTaxonomies(db, ns, updates);
    await ctx.log(`labels: ${JSON.stringify(counts)}; unlabeled: ${unlabeled}`);
    return { label_counts: counts, unlabeled };
  },
});

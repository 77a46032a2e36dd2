import { z } from "@hono/zod-openapi";
import { ApiError } from "../errors";
import { embed, normalize } from "./embedder";
import type { FeatureExtractor } from "../tasks/extractor-config";

/**
 * The Workers AI binding, if the deployment has one. It is optional: wrangler.toml has no [ai]
 * block (it would make `wrangler dev` need an account), so the generated Env does not declare it;
 * a deployment that adds `[ai] binding = "AI"` and regenerates the types gets `AI: Ai` there, and
 * this still reads it.
 */
export const aiBinding = (env: Env): Ai | undefined => (env as { AI?: Ai }).AI;

/** Texts per Workers AI call: the embedding models take at most 100 at once. */
export const AI_BATCH = 100;
/**
 * Characters of a text sent to the model. The bge models read 512 tokens; sending more only
 * makes requests heavy (256 KiB objects, a hundred at a time).
 */
export const AI_TEXT_CHARS = 8192;
/** Dimensions a model may answer with; anything else is a malformed answer. */
const MAX_DIMENSIONS = 4096;

/** Why texts could not be embedded. `retryable` is false when trying again cannot help. */
export class EmbeddingError extends Error {
  constructor(
    readonly code: "ai_unbound" | "ai_failed" | "ai_invalid_answer",
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

const AiAnswer = z.object({ data: z.array(z.array(z.number())) });

/**
 * Embeds texts with a collection's extractor: unit vectors (all zeros for a text without words),
 * one per text, in order. Workers AI is called with up to AI_BATCH texts at a time, and its
 * answer is checked (one vector per text, the same dimensions throughout, finite numbers) before
 * it is L2-normalised. Throws EmbeddingError.
 */
export async function embedTexts(env: Env, extractor: FeatureExtractor, texts: string[]): Promise<Float32Array[]> {
  if (extractor.type === "text_embedding") return texts.map(embed);
  const ai = aiBinding(env);
  if (!ai) throw new EmbeddingError("ai_unbound", `the collection embeds with Workers AI (${extractor.model}) but this deployment has no AI binding`, false);
  const out: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += AI_BATCH) {
    const batch = texts.slice(i, i + AI_BATCH).map((t) => t.slice(0, AI_TEXT_CHARS));
    let answer: unknown;
    try {
      answer = await ai.run(extractor.model, { text: batch });
    } catch (err) {
      throw new EmbeddingError("ai_failed", `Workers AI ${extractor.model} failed: ${err instanceof Error ? err.message : String(err)}`, true);
    }
    out.push(...checkAnswer(answer, batch.length, out[0]?.length, extractor.model));
  }
  return out;
}

/**
 * Embeds a request's text (a search query, a text to classify) with a collection's extractor.
 * Workers AI failing, or missing, is the service's failure, answered 500 with the reason.
 */
export async function embedQuery(env: Env, extractor: FeatureExtractor, text: string): Promise<Float32Array> {
  try {
    const [vector] = await embedTexts(env, extractor, [text]);
    if (!vector) throw new EmbeddingError("ai_invalid_answer", "the extractor returned no vector", true);
    return vector;
  } catch (err) {
    if (err instanceof EmbeddingError) throw new ApiError("internal_error", err.message, { code: err.code, retryable: err.retryable });
    throw err;
  }
}

function checkAnswer(answer: unknown, expected: number, dimensions: number | undefined, model: string): Float32Array[] {
  const parsed = AiAnswer.safeParse(answer);
  const invalid = (why: string) => new EmbeddingError("ai_invalid_answer", `Workers AI ${model} answered ${why}`, true);
  if (!parsed.success) throw invalid("without embeddings");
  const rows = parsed.data.data;
  if (rows.length !== expected) throw invalid(`${rows.length} vectors for ${expected} texts`);
  const dims = dimensions ?? rows[0]?.length ?? 0;
  if (dims < 1 || dims > MAX_DIMENSIONS) throw invalid(`vectors of ${dims} dimensions`);
  return rows.map((row) => {
    if (row.length !== dims) throw invalid(`vectors of ${row.length} and ${dims} dimensions`);
    if (!row.every(Number.isFinite)) throw invalid("a vector with a number that is not finite");
    return normalize(Float32Array.from(row));
  });
}

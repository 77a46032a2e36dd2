import { z } from "@hono/zod-openapi";

/**
 * A collection's feature extractor as the API takes it and D1 stores it (SPEC §8). The
 * embedding itself is src/embed's; this is the configuration every layer reads.
 */

/** The Workers AI text embedding models a collection may use. */
export const WORKERS_AI_MODELS = ["@cf/baai/bge-small-en-v1.5", "@cf/baai/bge-base-en-v1.5", "@cf/baai/bge-large-en-v1.5", "@cf/baai/bge-m3"] as const;
export type WorkersAiModel = (typeof WORKERS_AI_MODELS)[number];
export const DEFAULT_AI_MODEL: WorkersAiModel = "@cf/baai/bge-base-en-v1.5";

export const FeatureExtractorSchema = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text_embedding") }).strict(),
    z.object({ type: z.literal("workers_ai"), model: z.enum(WORKERS_AI_MODELS).optional() }).strict(),
  ])
  .openapi("FeatureExtractor");
export type FeatureExtractorInput = z.infer<typeof FeatureExtractorSchema>;
/** An extractor as stored: a Workers AI one always names its model. */
export type FeatureExtractor = { type: "text_embedding" } | { type: "workers_ai"; model: WorkersAiModel };

/** The stored form of what a request asked for (the default model made explicit). */
export function resolveExtractor(input: FeatureExtractorInput | undefined): FeatureExtractor {
  if (!input || input.type === "text_embedding") return { type: "text_embedding" };
  return { type: "workers_ai", model: input.model ?? DEFAULT_AI_MODEL };
}

/** Parses a stored extractor; rows written before extractors had options read as the built-in one. */
export function parseExtractor(stored: string): FeatureExtractor {
  const parsed = FeatureExtractorSchema.safeParse(JSON.parse(stored));
  return parsed.success ? resolveExtractor(parsed.data) : { type: "text_embedding" };
}

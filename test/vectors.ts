import { dot, normalize } from "../src/embed/embedder";

// Vector helpers shared by the search tests in the Workers runtime and in test/unit/ (pure code only).

/** A random unit vector with `nonzero` non-zero dimensions (hashed text vectors are sparse). */
export function randomUnit(random: () => number, dims: number, nonzero = dims): Float32Array {
  const v = new Float32Array(dims);
  for (let i = 0; i < nonzero; i++) v[Math.floor(random() * dims)] = random() * 2 - 1;
  return normalize(v);
}

/** Exact top k by brute force: score descending, then id. */
export function bruteForce(docs: Map<string, Float32Array>, query: Float32Array, k: number): { id: string; score: number }[] {
  return [...docs]
    .map(([id, v]) => ({ id, score: dot(query, v) }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
    .slice(0, k);
}

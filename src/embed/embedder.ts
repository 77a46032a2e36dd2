/**
 * The built-in offline embedder (SPEC §9): hashed features of words, word bigrams and character
 * trigrams, weighted sublinearly (1 + ln tf), signed by a second hash bit so that collisions
 * cancel rather than pile up, and L2-normalised. The same text always gives the same vector.
 */
export const DIMENSIONS = 256;

const WORD = /[\p{L}\p{N}]+/gu;

/** 32-bit FNV-1a over the UTF-16 code units of `text`, seeded. */
function fnv1a(text: string, seed: number): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function tokenize(text: string): string[] {
  return text.toLowerCase().normalize("NFKC").match(WORD) ?? [];
}

/** The feature counts of a text: words, adjacent word pairs, and character trigrams of words. */
function features(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (feature: string, weight = 1) => counts.set(feature, (counts.get(feature) ?? 0) + weight);
  const words = tokenize(text);
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? "";
    add(`w:${word}`);
    if (i > 0) add(`b:${words[i - 1]} ${word}`, 0.5);
    const padded = `^${word}$`;
    for (let j = 0; j + 3 <= padded.length; j++) add(`c:${padded.slice(j, j + 3)}`, 0.25);
  }
  return counts;
}

/** The embedding of `text`: a unit vector, or all zeros for a text without words. */
export function embed(text: string): Float32Array {
  const vector = new Float32Array(DIMENSIONS);
  for (const [feature, count] of features(text)) {
    const index = fnv1a(feature, 0) % DIMENSIONS;
    const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
    vector[index] = (vector[index] ?? 0) + sign * (1 + Math.log(count));
  }
  return normalize(vector);
}

export function normalize(vector: Float32Array): Float32Array {
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

/** Dot product; the cosine similarity of unit vectors. */
export function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}


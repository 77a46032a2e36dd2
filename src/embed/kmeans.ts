import { dot } from "./embedder";

/** A small seeded PRNG (mulberry32): the same seed gives the same clustering. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sqDistance = (a: Float32Array, b: Float32Array): number => {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    sum += d * d;
  }
  return sum;
};

/** k-means++ seeding: each next centre drawn with probability proportional to D(x)². */
export function seedCentroids(points: Float32Array[], k: number, random: () => number): Float32Array[] {
  const first = points[Math.floor(random() * points.length)];
  if (!first) return [];
  const centres = [Float32Array.from(first)];
  const nearest = points.map((p) => sqDistance(p, first));
  while (centres.length < k) {
    const total = nearest.reduce((a, b) => a + b, 0);
    let target = random() * total;
    let chosen = points.length - 1;
    for (let i = 0; i < points.length; i++) {
      target -= nearest[i] ?? 0;
      if (target <= 0) {
        chosen = i;
        break;
      }
    }
    const centre = Float32Array.from(points[chosen] ?? first);
    centres.push(centre);
    for (let i = 0; i < points.length; i++) nearest[i] = Math.min(nearest[i] ?? 0, sqDistance(points[i] ?? centre, centre));
  }
  return centres;
}

/** Index of the nearest centre (by squared distance) and that distance. */
export function assign(point: Float32Array, centres: Float32Array[]): { cluster: number; distance: number } {
  let best = 0;
  let bestDistance = Infinity;
  centres.forEach((c, i) => {
    const d = sqDistance(point, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  });
  return { cluster: best, distance: bestDistance };
}

/** One Lloyd step: new centres (empty clusters keep theirs), and whether any point moved. */
export function lloydStep(points: Float32Array[], centres: Float32Array[], labels: Int32Array): { centres: Float32Array[]; moved: number; inertia: number } {
  const dims = centres[0]?.length ?? 0;
  const sums = centres.map(() => new Float64Array(dims));
  const counts = new Array<number>(centres.length).fill(0);
  let moved = 0;
  let inertia = 0;
  points.forEach((p, i) => {
    const { cluster, distance } = assign(p, centres);
    if (labels[i] !== cluster) moved++;
    labels[i] = cluster;
    inertia += distance;
    counts[cluster] = (counts[cluster] ?? 0) + 1;
    const sum = sums[cluster];
    if (sum) for (let d = 0; d < dims; d++) sum[d] = (sum[d] ?? 0) + (p[d] ?? 0);
  });
  const next = centres.map((c, j) => {
    const n = counts[j] ?? 0;
    if (n === 0) return c;
    const sum = sums[j] ?? new Float64Array(dims);
    return Float32Array.from(sum, (v) => v / n);
  });
  return { centres: next, moved, inertia };
}

export { dot };

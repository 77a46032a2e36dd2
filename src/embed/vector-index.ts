/**
 * A collection's vectors in memory for search: one byte a dimension. Each vector is stored as
 * int8 codes with its own scale (v ≈ code × scale) and the norm of what that rounding lost, so
 * that a scan gives every document an approximate score with a guaranteed error bound. The
 * documents whose bound can still reach the top k are the candidates; their exact scores come from
 * the stored float vectors. A quarter of the memory of Float32Arrays (100 000 × 256 dimensions is
 * 26 MB, not 102 MB: an isolate has 128 MB), and the same results as a float scan.
 *
 * Codes are stored dimension-major (all documents' dimension d together), so a scan touches only
 * the dimensions where the query is non-zero (a short text's hashed vector has few) and reads
 * memory in order.
 */
/** Bytes before the codes in an encoded vector. */
export const ENCODED_HEADER = 16;

export class VectorIndex {
  /** Documents in the index; slots 0..count-1 are in use. */
  count = 0;
  private capacity: number;
  private codes: Int8Array;
  private scales: Float32Array;
  private errors: Float32Array;
  /** Two 32-bit hashes of each vector's float bits: equal fingerprints, equal vectors. */
  private prints: Uint32Array;
  private ids: string[] = [];
  private readonly slots = new Map<string, number>();

  constructor(
    readonly dimensions: number,
    capacity = 1024,
  ) {
    this.capacity = Math.max(16, capacity);
    this.codes = new Int8Array(dimensions * this.capacity);
    this.scales = new Float32Array(this.capacity);
    this.errors = new Float32Array(this.capacity);
    this.prints = new Uint32Array(2 * this.capacity);
  }

  /** Bytes held, roughly: codes, scale, error, fingerprint, and ~100 bytes of id string and map entry each. */
  get bytes(): number {
    return this.capacity * (this.dimensions + 16) + this.count * 100;
  }

  /** The bytes of an index of `count` vectors. */
  static bytesFor(dimensions: number, count: number): number {
    return count * (dimensions + 116);
  }

  has(id: string): boolean {
    return this.slots.has(id);
  }

  /** Adds or replaces a document's vector; false (and nothing stored) if its dimensions differ. */
  upsert(id: string, vector: Float32Array): boolean {
    return this.upsertEncoded(id, VectorIndex.encode(vector));
  }

  /**
   * A vector as the index keeps it, for storing next to the float vector in D1 (a quarter of its
   * size, so a full load reads a quarter of the bytes): scale (f32), rounding error (f32), two
   * fingerprint words (u32), then one int8 code a dimension; little-endian.
   */
  static encode(vector: Float32Array): Uint8Array {
    const out = new Uint8Array(ENCODED_HEADER + vector.length);
    const view = new DataView(out.buffer);
    let max = 0;
    for (const v of vector) max = Math.max(max, Math.abs(v));
    const scale = Math.fround(max / 127);
    let lost = 0;
    for (let d = 0; d < vector.length; d++) {
      const v = vector[d] ?? 0;
      const code = scale === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(v / scale)));
      view.setInt8(ENCODED_HEADER + d, code);
      lost += (v - code * scale) ** 2;
    }
    let h1 = 0x811c9dc5;
    let h2 = 0x9e3779b9;
    for (const word of new Uint32Array(vector.buffer, vector.byteOffset, vector.length)) {
      h1 = Math.imul(h1 ^ word, 0x01000193) >>> 0;
      h2 = Math.imul((h2 ^ word) + (h2 << 6), 0x5bd1e995) >>> 0;
    }
    view.setFloat32(0, scale, true);
    // Rounded up, so that the stored bound is never below the true one.
    view.setFloat32(4, Math.sqrt(lost) * (1 + 1e-6) + 1e-9, true);
    view.setUint32(8, h1, true);
    view.setUint32(12, h2, true);
    return out;
  }

  /** Adds or replaces a document from its encoded vector; false if its dimensions differ. */
  upsertEncoded(id: string, encoded: Uint8Array): boolean {
    if (encoded.length !== ENCODED_HEADER + this.dimensions) return false;
    let slot = this.slots.get(id);
    if (slot === undefined) {
      // A quarter more, not double: a full load sizes the index already, and doubling 37 MB
      // could push the cache past its budget for a few new documents.
      if (this.count === this.capacity) this.grow(Math.ceil(this.capacity * 1.25) + 16);
      slot = this.count++;
      this.slots.set(id, slot);
      this.ids[slot] = id;
    }
    const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const codes = new Int8Array(encoded.buffer, encoded.byteOffset + ENCODED_HEADER, this.dimensions);
    for (let d = 0; d < this.dimensions; d++) this.codes[d * this.capacity + slot] = codes[d] ?? 0;
    this.scales[slot] = view.getFloat32(0, true);
    this.errors[slot] = view.getFloat32(4, true);
    this.prints[2 * slot] = view.getUint32(8, true);
    this.prints[2 * slot + 1] = view.getUint32(12, true);
    return true;
  }

  /** Removes a document: the last one moves into its slot. */
  remove(id: string): void {
    const slot = this.slots.get(id);
    if (slot === undefined) return;
    const last = --this.count;
    this.slots.delete(id);
    if (slot !== last) {
      const moved = this.ids[last] ?? "";
      for (let d = 0; d < this.dimensions; d++) this.codes[d * this.capacity + slot] = this.codes[d * this.capacity + last] ?? 0;
      this.scales[slot] = this.scales[last] ?? 0;
      this.errors[slot] = this.errors[last] ?? 0;
      this.prints[2 * slot] = this.prints[2 * last] ?? 0;
      this.prints[2 * slot + 1] = this.prints[2 * last + 1] ?? 0;
      this.ids[slot] = moved;
      this.slots.set(moved, slot);
    }
    this.ids.length = last;
  }

  private grow(capacity: number): void {
    const codes = new Int8Array(this.dimensions * capacity);
    for (let d = 0; d < this.dimensions; d++) codes.set(this.codes.subarray(d * this.capacity, d * this.capacity + this.count), d * capacity);
    const scales = new Float32Array(capacity);
    scales.set(this.scales.subarray(0, this.count));
    const errors = new Float32Array(capacity);
    errors.set(this.errors.subarray(0, this.count));
    const prints = new Uint32Array(2 * capacity);
    prints.set(this.prints.subarray(0, 2 * this.count));
    this.prints = prints;
    this.codes = codes;
    this.scales = scales;
    this.errors = errors;
    this.capacity = capacity;
  }

  /**
   * The documents that may be among the k highest dot products with `query`, highest upper bound
   * first: every document whose upper bound reaches the k-th highest lower bound. Exact ties are
   * all kept, so the caller can order them by id. Documents with the same vector come as one
   * group (one exact score serves them all; a corpus with many copies of a text has many ties).
   * A query of zeros scores every document 0: then the k smallest ids are the answer.
   */
  candidates(query: Float32Array, k: number): Candidate[] {
    const n = this.count;
    if (n <= k) return this.ids.slice(0, n).map((id) => ({ ids: [id], upper: Infinity }));
    let l1 = 0;
    let l2 = 0;
    for (const q of query) {
      l1 += Math.abs(q);
      l2 += q * q;
    }
    l2 = Math.sqrt(l2);
    if (l1 === 0) return smallest(this.ids, k).map((id) => ({ ids: [id], upper: 0 }));
    const scores = new Float64Array(n);
    const cap = this.capacity;
    for (let d = 0; d < this.dimensions; d++) {
      const q = query[d] ?? 0;
      if (q === 0) continue;
      const codes = this.codes.subarray(d * cap, d * cap + n);
      for (let j = 0; j < n; j++) scores[j] = (scores[j] as number) + q * (codes[j] as number);
    }
    // |q·(v − v̂)| ≤ min(‖q‖₂‖v − v̂‖₂, ‖q‖₁ · scale/2); the margin covers float rounding.
    const lower = new Float64Array(n);
    const upper = scores;
    for (let j = 0; j < n; j++) {
      const scale = this.scales[j] as number;
      const approx = (scores[j] as number) * scale;
      const bound = Math.min(l2 * (this.errors[j] as number), (l1 * scale) / 2) + 1e-6;
      lower[j] = approx - bound;
      upper[j] = approx + bound;
    }
    const threshold = kthLargest(lower, k);
    const groups = new Map<string, Candidate>();
    for (let j = 0; j < n; j++) {
      if ((upper[j] as number) < threshold) continue;
      const key = `${this.prints[2 * j]}:${this.prints[2 * j + 1]}`;
      const group = groups.get(key);
      if (group) group.ids.push(this.ids[j] ?? "");
      else groups.set(key, { ids: [this.ids[j] ?? ""], upper: upper[j] as number });
    }
    const out = [...groups.values()];
    for (const g of out) g.ids.sort();
    return out.sort((a, b) => b.upper - a.upper || ((a.ids[0] ?? "") < (b.ids[0] ?? "") ? -1 : 1));
  }
}

/** Documents with one vector, ids in order, and a bound no exact score of theirs exceeds. */
export interface Candidate {
  ids: string[];
  upper: number;
}

/** The k-th largest value of `values` (k ≤ length), with a min-heap of k. */
function kthLargest(values: Float64Array, k: number): number {
  const heap = new Float64Array(k);
  let size = 0;
  for (const v of values) {
    if (size < k) {
      let i = size++;
      heap[i] = v;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if ((heap[parent] as number) <= (heap[i] as number)) break;
        [heap[parent], heap[i]] = [heap[i] as number, heap[parent] as number];
        i = parent;
      }
    } else if (v > (heap[0] as number)) {
      heap[0] = v;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < k && (heap[l] as number) < (heap[m] as number)) m = l;
        if (r < k && (heap[r] as number) < (heap[m] as number)) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i] as number, heap[m] as number];
        i = m;
      }
    }
  }
  return heap[0] as number;
}

/** The k smallest strings, without sorting them all. */
function smallest(ids: string[], k: number): string[] {
  const out: string[] = [];
  for (const id of ids) {
    if (out.length < k) out.push(id);
    else if (id < (out[k - 1] as string)) out[k - 1] = id;
    else continue;
    out.sort();
  }
  return out;
}

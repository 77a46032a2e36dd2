import { describe, expect, it } from "vitest";
import { dot, embed } from "../../src/embed/embedder";
import { fromBlob, toBlob } from "../../src/tasks/vector-blob";
import { assign, lloydStep, prng, seedCentroids } from "../../src/embed/kmeans";
import { accuracy, newModel, predict, probabilities, trainEpoch } from "../../src/embed/softmax";
import { VectorIndex } from "../../src/embed/vector-index";
import { seeded } from "../fake-endpoint";
import { bruteForce, randomUnit } from "../vectors";

// Moved from test/dataplane.test.ts: the embedder and the search index are pure code.
describe("the embedder", () => {
  it("is deterministic, unit length, and closer for related texts", () => {
    const a = embed("the striker scored a late goal in the league match");
    expect(Array.from(embed("the striker scored a late goal in the league match"))).toEqual(Array.from(a));
    expect(dot(a, a)).toBeCloseTo(1, 5);
    const sports = embed("football match with a penalty and a goal");
    const cooking = embed("simmer the garlic sauce and bake the dough");
    expect(dot(a, sports)).toBeGreaterThan(dot(a, cooking));
    expect(Array.from(embed("...")).every((v) => v === 0)).toBe(true);
  });
});

describe("the search index", () => {
  it("keeps every possible top-k document among its candidates, through updates and removals", () => {
    const random = seeded(11);
    const index = new VectorIndex(64, 16);
    const docs = new Map<string, Float32Array>();
    for (let i = 0; i < 3000; i++) {
      const id = `doc_${String(i).padStart(5, "0")}`;
      // Every tenth vector twice: exact ties must all be candidates.
      const v = i % 10 === 1 ? (docs.get(`doc_${String(i - 1).padStart(5, "0")}`) ?? randomUnit(random, 64, 12)) : randomUnit(random, 64, 12);
      docs.set(id, v);
      expect(index.upsert(id, v)).toBe(true);
    }
    expect(index.upsert("doc_odd", new Float32Array(32))).toBe(false);
    for (let i = 0; i < 3000; i += 7) {
      const id = `doc_${String(i).padStart(5, "0")}`;
      if (i % 2) {
        index.remove(id);
        docs.delete(id);
      } else {
        const v = randomUnit(random, 64, 20);
        index.upsert(id, v);
        docs.set(id, v);
      }
    }
    expect(index.count).toBe(docs.size);
    let total = 0;
    for (let q = 0; q < 60; q++) {
      // Half the queries are stored vectors, so the best match scores 1 and ties are common.
      const query = q % 2 ? randomUnit(random, 64, 8) : ([...docs.values()][q * 37] ?? randomUnit(random, 64));
      const ranked = index.candidates(query, 10);
      const candidates = new Set(ranked.flatMap((c) => c.ids));
      // Highest bound first, every bound really an upper bound, and a group is one vector.
      ranked.forEach((c, i) => {
        const first = docs.get(c.ids[0] ?? "") ?? new Float32Array();
        expect(c.upper).toBeGreaterThanOrEqual(dot(query, first));
        for (const id of c.ids) expect(Array.from(docs.get(id) ?? [])).toEqual(Array.from(first));
        if (i > 0) expect(c.upper).toBeLessThanOrEqual(ranked[i - 1]?.upper ?? Infinity);
      });
      total += candidates.size;
      for (const hit of bruteForce(docs, query, 10)) expect(candidates.has(hit.id), `query ${q}: ${hit.id} (${hit.score})`).toBe(true);
    }
    // A bound that let everything through would be correct and useless.
    expect(total / 60).toBeLessThan(100);
    // A query of zeros scores everything 0: the smallest ids, and only k of them.
    expect(index.candidates(new Float32Array(64), 3).flatMap((c) => c.ids)).toEqual(bruteForce(docs, new Float32Array(64), 3).map((h) => h.id));
  });
});

describe("vectors as blobs", () => {
  it("round-trips a vector through its stored bytes, also from a view into a larger buffer", () => {
    const v = embed("a vector stored in D1");
    expect(Array.from(fromBlob(toBlob(v)))).toEqual(Array.from(v));
    const padded = new Float32Array(v.length + 2);
    padded.set(v, 1);
    expect(Array.from(fromBlob(toBlob(padded.subarray(1, 1 + v.length))))).toEqual(Array.from(v));
  });
});

describe("k-means", () => {
  /** Two tight groups of points around two far-apart unit vectors. */
  const groups = (random: () => number) => {
    const [a, b] = [randomUnit(random, 16), randomUnit(random, 16)].map((v, g) => v.map((x, i) => (i === g ? 3 : 0) + x));
    const near = (centre: Float32Array) => centre.map((x) => x + (random() - 0.5) * 0.01);
    return [...Array.from({ length: 20 }, () => near(a as Float32Array)), ...Array.from({ length: 20 }, () => near(b as Float32Array))];
  };

  it("draws the same numbers from the same seed, and others from another", () => {
    const a = prng(42);
    const b = prng(42);
    const c = prng(43);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(first);
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it("separates two clear groups and converges: a further step moves nothing", () => {
    const points = groups(prng(7));
    let centres = seedCentroids(points, 2, prng(1));
    const labels = new Int32Array(points.length).fill(-1);
    for (let i = 0; i < 10; i++) centres = lloydStep(points, centres, labels).centres;
    expect(lloydStep(points, centres, labels).moved).toBe(0);
    const first = new Set(Array.from(labels.slice(0, 20)));
    const second = new Set(Array.from(labels.slice(20)));
    expect(first.size).toBe(1);
    expect(second.size).toBe(1);
    expect([...first][0]).not.toBe([...second][0]);
    expect(assign(points[0] ?? new Float32Array(16), centres).cluster).toBe(labels[0]);
  });
});

describe("softmax classifier", () => {
  it("learns separable classes, its probabilities sum to 1, and its loss falls", () => {
    const random = prng(3);
    const centres = [randomUnit(random, 8), randomUnit(random, 8), randomUnit(random, 8)];
    const xs: Float32Array[] = [];
    const ys: number[] = [];
    for (let i = 0; i < 90; i++) {
      const y = i % 3;
      xs.push((centres[y] ?? new Float32Array(8)).map((x) => x + (random() - 0.5) * 0.05));
      ys.push(y);
    }
    const model = newModel(["a", "b", "c"], 8);
    const first = trainEpoch(model, xs, ys, 0.5);
    let last = first;
    for (let epoch = 0; epoch < 200; epoch++) last = trainEpoch(model, xs, ys, 0.5);
    expect(last).toBeLessThan(first);
    expect(accuracy(model, xs, ys)).toBe(1);
    const p = probabilities(model, xs[0] ?? new Float32Array(8));
    expect(p.reduce((sum, x) => sum + x, 0)).toBeCloseTo(1, 6);
    expect(predict(model, xs[1] ?? new Float32Array(8))).toBe(1);
  });
});

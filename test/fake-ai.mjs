// A stand-in for the Workers AI binding in the workers test project (vitest.config.ts binds it as
// AI through a service binding to this auxiliary worker's FakeAi entrypoint; plain JS because
// auxiliary workers are not bundled). run(model, {text}) answers like a text embedding model:
// {shape, data}, one vector of DIMENSIONS numbers per text, deterministic (hashed words) and on
// purpose not unit length, so the service's own normalisation is exercised. Tests can count its
// calls and make it fail or answer nonsense, each time for the calls whose texts contain a marker
// of their own, so tests running at the same time never see each other's faults.
import { WorkerEntrypoint } from "cloudflare:workers";

const DIMENSIONS = 16;
const BATCH_LIMIT = 100;

/** marker → { calls, texts } */
const counts = new Map();
/** { marker, remaining, mode } */
const faults = [];

function fnv(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

function fakeEmbedding(text) {
  const vector = new Array(DIMENSIONS).fill(0);
  for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    const h = fnv(word);
    vector[h % DIMENSIONS] += h & 0x100 ? 3 : -3;
  }
  vector[DIMENSIONS - 1] += 0.5; // no text is all zeros
  return vector;
}

export class FakeAi extends WorkerEntrypoint {
  async run(model, inputs) {
    const texts = Array.isArray(inputs?.text) ? inputs.text : [inputs?.text];
    for (const [marker, c] of counts) {
      const n = texts.filter((t) => typeof t === "string" && t.includes(marker)).length;
      if (n > 0) counts.set(marker, { calls: c.calls + 1, texts: c.texts + n, largest: Math.max(c.largest, texts.length) });
    }
    if (typeof model !== "string" || !model.startsWith("@cf/")) throw new Error(`AiError: unknown model ${model}`);
    if (texts.length === 0 || texts.length > BATCH_LIMIT || texts.some((t) => typeof t !== "string")) throw new Error(`AiError: text must be 1-${BATCH_LIMIT} strings`);
    const fault = faults.find((f) => f.remaining > 0 && texts.some((t) => t.includes(f.marker)));
    if (fault) {
      fault.remaining--;
      if (fault.mode === "error") throw new Error("AiError: 3040: Capacity temporarily exceeded, please try again.");
      if (fault.mode === "nan") return { shape: [texts.length, DIMENSIONS], data: texts.map(() => new Array(DIMENSIONS).fill(Number.NaN)) };
      if (fault.mode === "short") return { shape: [texts.length - 1, DIMENSIONS], data: texts.slice(1).map(fakeEmbedding) };
      if (fault.mode === "dimensions") return { shape: [texts.length, 8], data: texts.map((t) => fakeEmbedding(t).slice(0, 8)) };
    }
    return { shape: [texts.length, DIMENSIONS], data: texts.map(fakeEmbedding), pooling: "mean" };
  }

  /** Starts counting the calls whose texts contain `marker`. */
  watch(marker) {
    counts.set(marker, { calls: 0, texts: 0, largest: 0 });
  }

  counts(marker) {
    return counts.get(marker) ?? { calls: 0, texts: 0, largest: 0 };
  }

  /** The next `times` calls with a text containing `marker` fail ("error") or answer nonsense. */
  fail(marker, times, mode = "error") {
    faults.push({ marker, remaining: times, mode });
  }

  embedding(text) {
    return fakeEmbedding(text);
  }
}

export default {
  fetch() {
    return new Response("fake Workers AI", { status: 404 });
  },
};

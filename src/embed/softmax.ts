/**
 * Multinomial logistic regression (softmax) on embedding vectors, trained by full-batch
 * gradient descent with a small L2 penalty: deterministic for the same data, split and seed.
 */
export interface SoftmaxModel {
  labels: string[];
  dims: number;
  /** Row-major [labels.length × (dims + 1)]: the last column is the bias. */
  weights: number[];
}

const L2 = 1e-4;

export function probabilities(model: SoftmaxModel, x: Float32Array): number[] {
  const k = model.labels.length;
  const stride = model.dims + 1;
  const logits = new Array<number>(k);
  for (let c = 0; c < k; c++) {
    let z = model.weights[c * stride + model.dims] ?? 0;
    for (let d = 0; d < model.dims; d++) z += (model.weights[c * stride + d] ?? 0) * (x[d] ?? 0);
    logits[c] = z;
  }
  const max = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

export function predict(model: SoftmaxModel, x: Float32Array): number {
  const p = probabilities(model, x);
  return p.indexOf(Math.max(...p));
}

export function newModel(labels: string[], dims: number): SoftmaxModel {
  return { labels, dims, weights: new Array<number>(labels.length * (dims + 1)).fill(0) };
}

/** One epoch of gradient descent over the whole training set; returns the mean cross-entropy. */
export function trainEpoch(model: SoftmaxModel, xs: Float32Array[], ys: number[], learningRate: number): number {
  const k = model.labels.length;
  const stride = model.dims + 1;
  const gradient = new Float64Array(model.weights.length);
  let loss = 0;
  xs.forEach((x, i) => {
    const p = probabilities(model, x);
    const y = ys[i] ?? 0;
    loss -= Math.log(Math.max(p[y] ?? 0, 1e-12));
    for (let c = 0; c < k; c++) {
      const err = (p[c] ?? 0) - (c === y ? 1 : 0);
      for (let d = 0; d < model.dims; d++) gradient[c * stride + d] = (gradient[c * stride + d] ?? 0) + err * (x[d] ?? 0);
      gradient[c * stride + model.dims] = (gradient[c * stride + model.dims] ?? 0) + err;
    }
  });
  const n = Math.max(xs.length, 1);
  for (let j = 0; j < model.weights.length; j++) {
    const w = model.weights[j] ?? 0;
    model.weights[j] = w - learningRate * ((gradient[j] ?? 0) / n + L2 * w);
  }
  return loss / n;
}

export function accuracy(model: SoftmaxModel, xs: Float32Array[], ys: number[]): number {
  if (xs.length === 0) return 0;
  let right = 0;
  xs.forEach((x, i) => {
    if (predict(model, x) === ys[i]) right++;
  });
  return right / xs.length;
}

// The fairness benchmark (issue 14): admission rate at 10 000 and 1 000 000 waiting tasks over
// 10 000 keys, the longest step of a 100 000-task bulk cancel, and the error of eta_seconds on
// a steady load. It runs in the Workers runtime (bench/fair/fair.bench.ts), not against
// `wrangler dev`: the backlog is seeded straight into the namespace's SQLite. Its heap also holds
// Vitest's runner, whose full collections land in the cancel's steps: `npm run bench` takes the
// bulk-cancel figure from bench/fair-dev.mjs (wrangler dev) and prints this one beside it.
// BENCH_FAIR_BIG (1000000) and BENCH_FAIR_CANCEL (100000) shrink it.
// `node bench/fair.mjs` runs it alone; `npm run bench` runs it as its part `fair` (runFair).
import { spawn } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.join(import.meta.dirname, "..");

/**
 * The figures of fair.bench.ts's `[fair bench] …` lines; a figure whose line is missing (its
 * test failed before printing) is null.
 */
export function parseFairLines(lines) {
  const figure = (pattern) => {
    for (const line of lines) {
      const match = line.match(pattern);
      if (match) return Number(match[1]);
    }
    return null;
  };
  return {
    admissionSmall: figure(/admission at 10000 waiting:.*\(median ([\d.]+)\)/),
    admissionBig: figure(/admission at (?!10000 )\d+ waiting:.*\(median ([\d.]+)\)/),
    bigWaiting: figure(/admission at (?!10000 )(\d+) waiting/),
    admissionRatio: figure(/ratio \d+ \/ 10000 waiting: ([\d.]+)/),
    cancelled: figure(/bulk cancel of (\d+) tasks/),
    longestStepMs: figure(/longest single step[^:]*: ([\d.]+) ms/),
    concurrentWaitMs: figure(/a concurrent call waited at most ([\d.]+) ms/),
    etaMeanErrorPercent: figure(/eta_seconds against the observed start.*mean error ([\d.]+) %/),
  };
}

/** Runs the fairness bench, echoing its output; resolves to its figures and the exit status. */
export function runFair({ quiet = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn("npx", ["vitest", "run", "--config", "bench/fair/vitest.config.ts"], { cwd: root, env: process.env, stdio: ["ignore", "pipe", "pipe"] });
    const lines = [];
    let partial = "";
    child.stdout.on("data", (chunk) => {
      if (!quiet) process.stdout.write(chunk);
      const text = partial + chunk.toString("utf8");
      const parts = text.split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts.filter((l) => l.includes("[fair bench]")));
    });
    child.stderr.on("data", (chunk) => {
      if (!quiet) process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (status) => {
      if (partial.includes("[fair bench]")) lines.push(partial);
      resolve({ status: status ?? 1, lines, figures: parseFairLines(lines) });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { status } = await runFair();
  process.exit(status);
}

// The fairness benchmark (issue 14): admission rate at 10 000 and 1 000 000 waiting tasks over
// 10 000 keys, the longest step of a 100 000-task bulk cancel, and the error of eta_seconds on
// a steady load. It runs in the Workers runtime (bench/fair/fair.bench.ts), not against
// `wrangler dev`: the backlog is seeded straight into the namespace's SQLite.
// BENCH_FAIR_BIG (1000000) and BENCH_FAIR_CANCEL (100000) shrink it.
import { spawnSync } from "node:child_process";
import path from "node:path";

const root = path.join(import.meta.dirname, "..");
const result = spawnSync("npx", ["vitest", "run", "--config", "bench/fair/vitest.config.ts"], { cwd: root, stdio: "inherit", env: process.env });
process.exit(result.status ?? 1);

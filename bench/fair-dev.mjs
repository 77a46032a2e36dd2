// Issue 14's bulk-cancel figure as production runs it: the longest single step of a 100 000-task
// bulk cancel, measured through `wrangler dev` (the bench's counting build, local state on tmpfs)
// where the isolate's heap holds only the service. bench/fair.bench.ts measures the same cancel
// inside vitest-pool-workers, whose heap also holds Vitest's runner (V8's full collections there
// take 35–70 ms and land in whatever step runs).
// The tasks are made through the public API (POST /v1/tasks/batch, 1 000 a call, a pulled type
// nobody leases, so at most max_concurrent_tasks are queued and the rest wait as created), the
// cancel is POST /v1/tasks/bulk-cancel; the step lengths come from inside the object through the
// counting build's seams (/__bench/fair/*: the last bulk cancel's result, a ticker, the outbox).
// The service runs at nice -10 where the bench may raise priority (BENCH_FAIR_NICE, 0 for none): on
// a machine shared with other work, the OS otherwise takes the CPU from workerd for 20–70 ms at
// times, in the middle of a step (CPU profiles show these as gaps between samples, not as GC or
// code), and the longest step measures the neighbours. A Durable Object in production has its
// thread to itself. BENCH_FAIR_CANCEL (100000) shrinks it; BENCH_FAIR_DEV_PORT (8794) moves it;
// BENCH_FAIR_INSPECTOR (a port) opens wrangler's inspector there, for a CPU profile of the cancel.
// `node bench/fair-dev.mjs` runs it alone; `npm run bench` runs it in its part `fair` (runFairDev).
import { execFileSync, spawn } from "node:child_process";
import { devEnv, devEnvLine } from "./dev-env.mjs";
import { jsonClient } from "./http-client.mjs";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { getPriority, loadavg, setPriority, tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.join(import.meta.dirname, "..");
const ADMIN = "bench-admin-token";
const TASK_TYPE = "fairdev_hold";
const BATCH = 1000;
/** The concurrent client's pause between two reads. */
const PROBE_PAUSE_MS = 10;
/** Issue 14's aim for a step. */
export const STEP_AIM_MS = 50;

/** Longest, p99 and how many of `durations` exceed `aimMs`. */
export function spread(durations, aimMs = STEP_AIM_MS) {
  const sorted = [...durations].sort((a, b) => a - b);
  return {
    count: sorted.length,
    longest: sorted.at(-1) ?? 0,
    p50: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.5))] ?? 0,
    p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
    over: sorted.filter((d) => d > aimMs).length,
  };
}

/** A spread as the bench prints it. */
export function formatSpread(s, aimMs = STEP_AIM_MS) {
  return `longest ${s.longest.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, ${s.over} of ${s.count} over ${aimMs} ms`;
}

const client = (base) => jsonClient(base, { maxSockets: 16, uncountedAll: true });

/** Sets this process's nice value (its children inherit it); false when not allowed or not asked. */
function raisePriority(nice) {
  if (!Number.isFinite(nice) || nice >= getPriority()) return false;
  try {
    setPriority(nice);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * Starts wrangler dev, seeds `count` tasks through the API, bulk-cancels them and reads the step
 * lengths from inside the object. Resolves to the figures (null where the run failed).
 */
export async function runFairDev({ count = Number(process.env.BENCH_FAIR_CANCEL ?? 100_000), port = Number(process.env.BENCH_FAIR_DEV_PORT ?? 8794), log = console.log } = {}) {
  const say = (line) => log(`  [fair dev] ${line}`);
  const state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-fair-dev-"));
  const wrangler = path.join(root, "node_modules/.bin/wrangler");
  const { http, close } = client(`http://127.0.0.1:${port}`);
  let server = null;
  try {
    execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: root, stdio: "ignore", env: { ...process.env, CI: "true" } });
    // The child inherits this process's priority at spawn: raised for it, then put back.
    const ownPriority = getPriority();
    const raised = raisePriority(Number(process.env.BENCH_FAIR_NICE ?? -10));
    server = spawn(
      wrangler,
      [
        "dev", "bench/counting/worker.ts", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", state, "--log-level", "warn", "--var", `ADMIN_TOKEN:${ADMIN}`,
        ...(process.env.BENCH_FAIR_INSPECTOR ? ["--inspector-port", process.env.BENCH_FAIR_INSPECTOR] : []),
      ],
      { cwd: root, stdio: ["ignore", "inherit", "inherit"], detached: true, env: devEnv() },
    );
    say(devEnvLine());
    if (raised) setPriority(ownPriority);
    say(`wrangler dev at nice ${raised ? process.env.BENCH_FAIR_NICE ?? -10 : `${ownPriority} (raising its priority was not allowed or not asked for)`}; load average ${loadavg().map((l) => l.toFixed(2)).join(", ")} on this machine`);
    await until(async () => (await http("GET", "/health")).status === 200, 60_000, "wrangler dev to serve");

    const ns = await http("POST", "/v1/namespaces", {
      token: ADMIN,
      body: { namespace_name: "bench-fair-dev", settings: { requests_per_second: 10_000, max_concurrent_tasks: 100 } },
    });
    if (ns.status !== 201) throw new Error(`creating the namespace failed: ${ns.status} ${ns.text.slice(0, 200)}`);
    const namespaceId = ns.json.namespace_id;
    const key = (await http("POST", "/v1/namespaces/bench-fair-dev/api-keys", { token: ADMIN, body: {} })).json.api_key;
    await http("PUT", `/v1/processors/${TASK_TYPE}`, { token: key, body: { mode: "pull" } });
    const seam = (name) => http(name === "ticker" || name === "ticker-stop" ? "POST" : "GET", `/__bench/fair/${name}?ns=${namespaceId}`, { token: ADMIN });
    const outboxLeft = async () => (await seam("outbox")).json.left;

    const seedStart = performance.now();
    let made = 0;
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        while (made < count) {
          const n = Math.min(BATCH, count - made);
          made += n;
          const tasks = Array.from({ length: n }, (_, i) => ({ task_type: TASK_TYPE, inputs: { n: i } }));
          const res = await http("POST", "/v1/tasks/batch", { token: key, body: { tasks } });
          if (res.status !== 201) throw new Error(`batch create failed: ${res.status} ${res.text.slice(0, 200)}`);
        }
      }),
    );
    const seeded = (performance.now() - seedStart) / 1000;
    // The creates' events and records go to D1 first: the cancel is measured on its own.
    await until(async () => (await outboxLeft()) === 0, 600_000, "the creates' outbox to drain");
    const stats = (await http("GET", "/v1/tasks/stats", { token: key })).json;
    say(`seeded ${count} tasks through POST /v1/tasks/batch (${BATCH} a call) in ${seeded.toFixed(1)} s, outbox drained after ${((performance.now() - seedStart) / 1000).toFixed(1)} s: ${stats.created} created, ${stats.queued} queued`);

    const ticking = seam("ticker");
    // A profiler attached on the line above gets a moment to start.
    await sleep(process.env.BENCH_FAIR_INSPECTOR ? 2000 : 100);
    let done = false;
    const probes = [];
    // A client reading the namespace meanwhile, PROBE_PAUSE_MS after each answer: back to back,
    // its own work (locally the Worker's too, on the object's thread) would be in every yield.
    const probing = (async () => {
      while (!done) {
        const t0 = performance.now();
        await http("GET", `/v1/processors/${TASK_TYPE}`, { token: key });
        probes.push(performance.now() - t0);
        await sleep(PROBE_PAUSE_MS);
      }
    })();
    const start = performance.now();
    const cancel = await http("POST", "/v1/tasks/bulk-cancel", { token: key, body: { task_type: TASK_TYPE } });
    if (cancel.status !== 200) throw new Error(`bulk cancel failed: ${cancel.status} ${cancel.text.slice(0, 200)}`);
    const total = (performance.now() - start) / 1000;
    await until(async () => (await outboxLeft()) === 0, 900_000, "the cancel's outbox to drain");
    const drained = (performance.now() - start) / 1000;
    done = true;
    await probing;
    await seam("ticker-stop");
    const gaps = (await ticking).json.gaps;
    const steps = (await seam("last-bulk-cancel")).json;
    const waited = spread(probes);
    say(`bulk cancel of ${cancel.json.cancelled} tasks (POST /v1/tasks/bulk-cancel): ${total.toFixed(1)} s, ${steps.steps} steps (${((total * 1000) / steps.steps).toFixed(1)} ms a step on average)`);
    say(`longest single step (from its start to the end of its yield, an upper bound, read inside the object): ${steps.longest_step_ms.toFixed(1)} ms (aim < ${STEP_AIM_MS} ms); p99 ${steps.p99_step_ms.toFixed(1)} ms, ${steps.slow_steps} of ${steps.steps} over ${STEP_AIM_MS} ms`);
    say(`object held at once (in-object ticker, the cancel and the alarm's drain of its outbox, ${drained.toFixed(1)} s): ${formatSpread(spread(gaps))}`);
    say(`a concurrent call (GET /v1/processors/{type}, one row in the object, ${PROBE_PAUSE_MS} ms after the last answer) waited at most ${waited.longest.toFixed(1)} ms (p50 ${waited.p50.toFixed(1)} ms, p99 ${waited.p99.toFixed(1)} ms, ${waited.count} calls)`);
    return {
      cancelled: cancel.json.cancelled,
      steps: steps.steps,
      longestStepMs: steps.longest_step_ms,
      p99StepMs: steps.p99_step_ms,
      slowSteps: steps.slow_steps,
      longestHoldMs: spread(gaps).longest,
      concurrentWaitMs: waited.longest,
    };
  } finally {
    if (server) {
      try {
        process.kill(-server.pid, "SIGTERM");
      } catch {}
      await sleep(500);
    }
    close();
    rmSync(state, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await runFairDev();
}

#!/usr/bin/env node
// npm run bench:isolation: what one hostile namespace does to another's latency.
// Starts the service (wrangler dev, fresh state on tmpfs), namespace B runs tasks one at a time
// through a loopback processor and the time from create to completed is measured: first alone,
// then while namespace A sends the crafted batch_import of issue 10 (a staging reference whose
// payload holds fewer objects than `count`: the handler once looped forever without yielding).
// Prints B's p50/p99/max and the tasks that did not finish within their deadline in each phase.
// Options (env): BENCH_PORT (8797), ISOLATION_TASKS (20), ISOLATION_DEADLINE_MS (10000).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startProcessor } from "../examples/processor.mjs";

const PORT = Number(process.env.BENCH_PORT ?? 8797);
const TASKS = Number(process.env.ISOLATION_TASKS ?? 20);
const DEADLINE_MS = Number(process.env.ISOLATION_DEADLINE_MS ?? 10_000);
const BASE = `http://127.0.0.1:${PORT}`;
const ADMIN = "bench-admin-token";

async function http(method, url, { token, body, timeoutMs = DEADLINE_MS } = {}) {
  const response = await fetch(`${BASE}${url}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, json, text };
}

async function namespace(name) {
  const made = await http("POST", "/v1/namespaces", { token: ADMIN, body: { namespace_name: name, settings: { requests_per_second: 10_000 } } });
  // A tree from before rate limits knows no requests_per_second.
  if (made.status === 422) await http("POST", "/v1/namespaces", { token: ADMIN, body: { namespace_name: name } });
  return (await http("POST", `/v1/namespaces/${name}/api-keys`, { token: ADMIN, body: {} })).json.api_key;
}

/** Create → completed of one task of B, or null when it did not finish within the deadline. */
async function oneTask(key) {
  const t0 = performance.now();
  try {
    const created = await http("POST", "/v1/tasks", { token: key, body: { task_type: "iso_run", inputs: {} } });
    if (created.status !== 201) return null;
    const id = created.json.task_id;
    while (performance.now() - t0 < DEADLINE_MS) {
      const left = Math.max(1, Math.ceil((DEADLINE_MS - (performance.now() - t0)) / 1000));
      const got = await http("GET", `/v1/tasks/${id}?wait=${Math.min(left, 10)}`, { token: key });
      if (got.json?.status === "completed") return performance.now() - t0;
    }
  } catch {}
  return null;
}

async function phase(name, key) {
  const times = [];
  let unfinished = 0;
  for (let i = 0; i < TASKS; i++) {
    const ms = await oneTask(key);
    if (ms === null) unfinished++;
    else times.push(ms);
  }
  times.sort((a, b) => a - b);
  const pct = (p) => (times.length ? times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))].toFixed(0) : "-");
  console.log(`  ${name.padEnd(34)} p50 ${pct(50)} ms  p99 ${pct(99)} ms  max ${times.length ? times.at(-1).toFixed(0) : "-"} ms  unfinished ${unfinished}/${TASKS}`);
}

const state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-iso-"));
const wrangler = path.resolve("node_modules/.bin/wrangler");
execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { stdio: "ignore", env: { ...process.env, CI: "true" } });
const server = spawn(
  wrangler,
  ["dev", "--port", String(PORT), "--ip", "127.0.0.1", "--persist-to", state, "--log-level", "warn", "--var", `ADMIN_TOKEN:${ADMIN}`, "--var", "ALLOW_PRIVATE_URLS:true"],
  { stdio: ["ignore", "ignore", "inherit"], detached: true },
);
const killServer = () => {
  try {
    process.kill(-server.pid, "SIGKILL");
  } catch {}
};
process.on("SIGTERM", () => (killServer(), process.exit(1)));
process.on("SIGINT", () => (killServer(), process.exit(1)));
const processor = await startProcessor({ port: PORT + 1, quiet: true });
try {
  for (let i = 0; ; i++) {
    try {
      if ((await http("GET", "/health", { timeoutMs: 1000 })).status === 200) break;
    } catch {}
    if (i > 600) throw new Error("wrangler dev did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const b = await namespace("iso-b");
  await http("PUT", "/v1/processors/iso_run", { token: b, body: { url: `http://127.0.0.1:${PORT + 1}/run` } });
  console.log(`edge-tasks isolation bench: ${TASKS} tasks of namespace B one at a time, deadline ${DEADLINE_MS} ms each\n`);
  await phase("B alone", b);

  const a = await namespace("iso-a");
  const bucket = (await http("POST", "/v1/buckets", { token: a, body: { bucket_name: "hostile" } })).json.bucket_id;
  const staged = (await http("POST", `/v1/buckets/${bucket}/objects/batch`, { token: a, body: { objects: [{ content: "x" }] } })).json.task;
  await http("POST", `/v1/tasks/${staged.task_id}/cancel`, { token: a });
  const crafted = await http("POST", "/v1/tasks", {
    token: a,
    body: { task_type: "batch_import", inputs: { bucket_id: bucket, staging_id: staged.inputs.staging_id, count: 2 } },
  });
  console.log(`  crafted batch_import from A: ${crafted.status}${crafted.json?.error ? ` ${crafted.json.error.type}: ${crafted.json.error.message}` : ""}`);
  if (crafted.status === 201) {
    // Measure once the crafted task runs (or has already ended), not while it still waits.
    for (let i = 0; i < 20; i++) {
      const seen = await http("GET", `/v1/tasks/${crafted.json.task_id}`, { token: a, timeoutMs: 1000 }).catch(() => null);
      if (seen?.json && seen.json.status !== "created" && seen.json.status !== "queued") break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await phase("B while A's crafted import runs", b);
  if (crafted.status === 201) {
    const seen = await http("GET", `/v1/tasks/${crafted.json.task_id}`, { token: a, timeoutMs: 5000 }).catch(() => null);
    console.log(`  crafted task afterwards: ${seen?.json?.status ?? "no answer"}${seen?.json?.error ? ` (${seen.json.error.code})` : ""}`);
  }
} finally {
  await processor.close?.();
  killServer();
  rmSync(state, { recursive: true, force: true });
}
process.exit(0);

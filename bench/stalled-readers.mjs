#!/usr/bin/env node
// Memory held for stalled SSE readers: starts the service under `wrangler dev` (state on
// /dev/shm), opens READERS streams on /v1/events that are never read, creates TASKS tasks with
// ~60 KiB inputs (each of their events carries the task, inputs included), and reports the
// resident memory of the runtime's workerd process before the streams opened and after the
// events went out.
//   npx node bench/stalled-readers.mjs [root]   (node 22 from node_modules; root: the checkout to run, default this one)
// Options (env): READERS (10), TASKS (200), INPUT_KIB (60), SETTLE_SECONDS (10).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, ".."));
const READERS = Number(process.env.READERS ?? 10);
const TASKS = Number(process.env.TASKS ?? 200);
const INPUT_KIB = Number(process.env.INPUT_KIB ?? 60);
const SETTLE_SECONDS = Number(process.env.SETTLE_SECONDS ?? 10);
const ADMIN = "stalled-bench-admin";
const quietEnv = { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "warn", NO_COLOR: "1" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resident bytes of the workerd process that runs the Worker (the one with an inspector). */
function runtimeRss(group) {
  const pids = execFileSync("ps", ["-o", "pid=,comm=", "-g", String(group)]).toString().trim().split("\n")
    .map((l) => l.trim().split(/\s+/)).filter(([, comm]) => comm === "workerd").map(([pid]) => pid);
  let total = 0;
  for (const pid of pids) {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("--inspector-addr")) continue;
    total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  }
  return total;
}

async function main() {
  const state = mkdtempSync("/dev/shm/edge-tasks-stalled-");
  const wrangler = path.join(root, "node_modules/.bin/wrangler");
  try {
    execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: root, env: quietEnv, stdio: "ignore" });
  } catch (err) {
    rmSync(state, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(
    wrangler,
    ["dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(await freePort()), "--persist-to", state,
      "--log-level", "error", "--show-interactive-dev-session=false", "--var", `ADMIN_TOKEN:${ADMIN}`, "--var", "ALLOW_PRIVATE_URLS:true"],
    { cwd: root, env: quietEnv, stdio: "ignore", detached: true },
  );
  const stop = () => {
    try {
      process.kill(-proc.pid, "SIGTERM");
    } catch {}
    rmSync(state, { recursive: true, force: true });
  };
  try {
    for (let deadline = Date.now() + 90_000; ; await sleep(200)) {
      if (Date.now() > deadline) throw new Error("wrangler dev did not start");
      try {
        if ((await fetch(`${base}/health`)).status === 200) break;
      } catch {}
    }
    const api = async (method, url, token, body) => {
      const res = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body && JSON.stringify(body) });
      return res.json();
    };
    await api("POST", "/v1/namespaces", ADMIN, { namespace_name: "stalled" });
    const key = (await api("POST", "/v1/namespaces/stalled/api-keys", ADMIN, {})).api_key;
    // A processor nobody answers: attempts fail and retry, each step an event carrying the inputs.
    await api("PUT", "/v1/processors/stalled_job", key, { url: "http://127.0.0.1:9/never", lease_seconds: 60 });
    await api("GET", "/v1/tasks/stats", key);
    await sleep(2000);
    const before = runtimeRss(proc.pid);

    // Readers that never read: node stops taking from the socket once its buffers are full.
    const readers = [];
    for (let i = 0; i < READERS; i++) {
      readers.push(await new Promise((resolve, reject) => {
        const req = request(`${base}/v1/events`, { headers: { authorization: `Bearer ${key}` } }, (res) => {
          res.pause();
          resolve(req);
        });
        req.on("error", reject);
        req.end();
      }));
    }
    const padding = "p".repeat(INPUT_KIB * 1024);
    for (let i = 0; i < TASKS; i++) await api("POST", "/v1/tasks", key, { task_type: "stalled_job", inputs: { padding } });
    await sleep(SETTLE_SECONDS * 1000);
    const after = runtimeRss(proc.pid);
    for (const req of readers) req.destroy();
    const mib = (bytes) => (bytes / 1024 / 1024).toFixed(1);
    console.log(`${root}: ${READERS} stalled readers, ${TASKS} tasks with ${INPUT_KIB} KiB inputs`);
    console.log(`  runtime resident memory: ${mib(before)} MiB before, ${mib(after)} MiB after (+${mib(after - before)} MiB)`);
  } finally {
    stop();
  }
}

await main();

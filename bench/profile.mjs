#!/usr/bin/env node
// A V8 CPU profile of one path of the service under load, through `wrangler dev` (the Worker and
// every Durable Object share one isolate there, so one profile shows both), for finding where a
// path's time goes (issue 11). Not a benchmark: the profiler slows the isolate about twofold, so
// read shares, not rates. Calls into the runtime (SQLite, crypto, RPC) are attributed to their JS
// caller and their shares run high; `perf record -g -p <workerd pid>` shows the runtime's side.
//
//   npx node bench/profile.mjs [batch|create|push|health] [seconds]
//
// Prints the call tree (inclusive %, self %, the hottest lines), writes the profile to
// /tmp/edge-tasks-<scenario>.cpuprofile (Chrome DevTools opens it) and the bundle it refers to
// beside it. Options (env): PROFILE_PORT (8899), PROFILE_INSPECTOR (9339), PROFILE_MIN (0.5, the
// smallest share of a node printed, %).
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { startProcessor } from "../examples/processor.mjs";
import { devEnv } from "./dev-env.mjs";
import { jsonClient } from "./http-client.mjs";

const PORT = Number(process.env.PROFILE_PORT ?? 8899);
const INSPECTOR = Number(process.env.PROFILE_INSPECTOR ?? 9339);
const MIN_SHARE = Number(process.env.PROFILE_MIN ?? 0.5);
const CLIENTS = 32;
const ADMIN = "profile-admin-token";
const BASE = `http://127.0.0.1:${PORT}`;

const hundred = (type) => ({ tasks: Array.from({ length: 100 }, (_, i) => ({ task_type: type, inputs: { n: i } })) });

/** Each scenario registers what it needs and returns one request of its load. */
const SCENARIOS = {
  async batch(http, key) {
    await http("PUT", "/v1/processors/held", { token: key, body: { mode: "pull" } });
    return () => http("POST", "/v1/tasks/batch", { token: key, body: hundred("held") });
  },
  async create(http, key) {
    await http("PUT", "/v1/processors/held", { token: key, body: { mode: "pull" } });
    return () => http("POST", "/v1/tasks", { token: key, body: { task_type: "held", inputs: { n: 1 } } });
  },
  async push(http, key) {
    await http("PUT", "/v1/processors/run", { token: key, body: { url: `http://127.0.0.1:${PORT + 1}/run` } });
    return () => http("POST", "/v1/tasks", { token: key, body: { task_type: "run", inputs: { n: 1 } } });
  },
  async health(http) {
    return () => http("GET", "/health");
  },
};

/** The Chrome DevTools protocol over the inspector's WebSocket: `send(method, params)` answers its result. */
async function inspector() {
  const [target] = await (await fetch(`http://127.0.0.1:${INSPECTOR}/json`)).json();
  // Miniflare's inspector proxy takes connections from local origins only.
  const socket = new WebSocket(target.webSocketDebuggerUrl, { headers: { Origin: "http://127.0.0.1" } });
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  let last = 0;
  const waiting = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    waiting.get(message.id)?.(message.result);
    waiting.delete(message.id);
  });
  return {
    send: (method, params = {}) => new Promise((resolve) => {
      waiting.set(++last, resolve);
      socket.send(JSON.stringify({ id: last, method, params }));
    }),
    close: () => socket.close(),
  };
}

/** CLIENTS closed loops of `send` for `ms`; the requests made. */
async function load(send, ms) {
  const deadline = Date.now() + ms;
  const counts = await Promise.all(Array.from({ length: CLIENTS }, async () => {
    let n = 0;
    for (; Date.now() < deadline; n++) await send();
    return n;
  }));
  return counts.reduce((a, b) => a + b, 0);
}

/** The call tree of `profile`, each node with its inclusive and self share and its source line in `bundle`. */
export function callTree(profile, bundle, minShare) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const inclusive = new Map();
  const sum = (id) => {
    const t = (nodes.get(id).children ?? []).reduce((acc, child) => acc + sum(child), self.get(id) ?? 0);
    inclusive.set(id, t);
    return t;
  };
  sum(profile.nodes[0].id);
  const lines = [];
  const walk = (id, depth) => {
    const share = (inclusive.get(id) / total) * 100;
    if (share < minShare) return;
    const { callFrame: frame, positionTicks = [] } = nodes.get(id);
    const source = frame.lineNumber >= 0 && frame.url === "index.js" ? (bundle[frame.lineNumber] ?? "").trim().slice(0, 70) : "";
    const hottest = [...positionTicks].sort((a, b) => b.ticks - a.ticks).slice(0, 3).map((p) => `L${p.line}:${p.ticks}`).join(" ");
    lines.push(`${"  ".repeat(depth)}${share.toFixed(1)}% (self ${(((self.get(id) ?? 0) / total) * 100).toFixed(1)}) ${frame.functionName || "(anonymous)"}:${frame.lineNumber} ${source} ${hottest}`);
    for (const child of [...(nodes.get(id).children ?? [])].sort((a, b) => inclusive.get(b) - inclusive.get(a))) walk(child, depth + 1);
  };
  walk(profile.nodes[0].id, 0);
  return lines;
}

/** The bundle wrangler dev serves (the profile's line numbers are its lines). */
function newestBundle() {
  const dir = path.resolve(".wrangler/tmp");
  const bundles = readdirSync(dir).map((d) => path.join(dir, d, "index.js")).filter(existsSync);
  return bundles.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

async function main(scenario, seconds) {
  if (!SCENARIOS[scenario]) throw new Error(`no scenario "${scenario}" (${Object.keys(SCENARIOS).join(", ")})`);
  const out = path.join(tmpdir(), `edge-tasks-${scenario}`);
  const state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-profile-"));
  const wrangler = path.resolve("node_modules/.bin/wrangler");
  execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { stdio: "ignore", env: { ...process.env, CI: "true" } });
  const server = spawn(
    wrangler,
    ["dev", "--port", String(PORT), "--ip", "127.0.0.1", "--persist-to", state, "--log-level", "warn", "--inspector-port", String(INSPECTOR), "--var", `ADMIN_TOKEN:${ADMIN}`, "--var", "ALLOW_PRIVATE_URLS:true"],
    { stdio: ["ignore", "inherit", "inherit"], detached: true, env: devEnv() },
  );
  const processor = await startProcessor({ port: PORT + 1, quiet: true });
  const { http, close } = jsonClient(BASE, { maxSockets: CLIENTS * 2 });
  try {
    for (let tries = 0; ; tries++) {
      const up = await http("GET", "/health").catch(() => null);
      if (up?.status === 200) break;
      if (tries > 600) throw new Error("wrangler dev did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
    const made = await http("POST", "/v1/namespaces", { token: ADMIN, body: { namespace_name: "profile", settings: { requests_per_second: 10_000, max_concurrent_tasks: 100 } } });
    if (made.status !== 201) throw new Error(`creating the namespace failed: ${made.status} ${made.text}`);
    const key = (await http("POST", "/v1/namespaces/profile/api-keys", { token: ADMIN, body: {} })).json.api_key;
    const send = await SCENARIOS[scenario](http, key);
    await load(send, 2000);
    const devtools = await inspector();
    await devtools.send("Profiler.enable");
    await devtools.send("Profiler.setSamplingInterval", { interval: 200 });
    await devtools.send("Profiler.start");
    const requests = await load(send, seconds * 1000);
    const { profile } = await devtools.send("Profiler.stop");
    devtools.close();
    const bundle = newestBundle();
    writeFileSync(`${out}.cpuprofile`, JSON.stringify(profile));
    copyFileSync(bundle, `${out}.bundle.js`);
    console.log(`${scenario}: ${requests} requests in ${seconds} s under the profiler (${(requests / seconds).toFixed(0)}/s)`);
    console.log(`profile: ${out}.cpuprofile, its bundle: ${out}.bundle.js\n`);
    for (const line of callTree(profile, readFileSync(bundle, "utf8").split("\n"), MIN_SHARE)) console.log(line);
  } finally {
    close();
    await processor.close();
    process.kill(-server.pid, "SIGTERM");
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv[2] ?? "batch", Number(process.argv[3] ?? 6));

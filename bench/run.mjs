#!/usr/bin/env node
// npm run bench: starts the service locally (wrangler dev, fresh state) and measures, in one run,
//   1. requests/s of POST /v1/tasks next to requests/s of GET /health (a trivial route of the
//      same Worker); the ratio is the figure;
//   2. end-to-end tasks/s, create → completed, through a processor on loopback.
//   4. webhook events delivered per second to a local endpoint, and the latency an active webhook
//      adds to POST /v1/tasks (none is the goal: delivery is asynchronous);
//   3. p50/p99 of a filtered list page with 10 000 and with 1 000 000 retained records (the
//      ratio is the figure; flat is the goal), and the purge time per 100 000 expired records.
//   5. the data plane: documents embedded per second, batch_import of 10 000 objects into two
//      collections end to end, clustering of 20 000 documents, search latency over 100 000.
//   6. real-time tracking: event latency to SSE listeners, idle WebSocket listeners per namespace
//      and memory per listener (bench/streams.mjs).
//   7. pull mode: tasks/s of POST /v1/tasks/batch (100 a call), and end to end with batch creates
//      and one pull worker (examples/pull-worker.mjs) leasing 100 at a time and reporting in
//      batches; each ÷ the trivial route's req/s.
// Options (env): BENCH_PORT (8799), BENCH_SECONDS (8), BENCH_CONCURRENCY (32), BENCH_TASKS (2000),
// BENCH_BIG (1000000), BENCH_SKIP_RECORDS (1 to skip part 3), BENCH_SKIP_DATAPLANE (1 to skip part 5),
// BENCH_IMPORT (10000), BENCH_PARTS (comma-separated subset of load,e2e,webhooks,streams,pull; default all),
// BENCH_PULL_TASKS (10000),
// BENCH_LISTENERS (100), BENCH_SOCKETS (4000).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeFileSync } from "node:fs";
import { startProcessor } from "../examples/processor.mjs";
import { startPullWorker } from "../examples/pull-worker.mjs";
import { seedNamespace, seedRecords } from "./seed.mjs";
import { benchStreams } from "./streams.mjs";
import { embedRate, formatSearch, loadEmbedder, searchLatency, seedDocumentsSql, text, writeSql } from "./dataplane.mjs";

const PORT = Number(process.env.BENCH_PORT ?? 8799);
const PROCESSOR_PORT = PORT + 1;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const E2E_TASKS = Number(process.env.BENCH_TASKS ?? 2000);
const BIG = Number(process.env.BENCH_BIG ?? 1_000_000);
const RECORDS = process.env.BENCH_SKIP_RECORDS !== "1";
const LISTS = [
  { name: "list-10k", namespaceId: "ns_benchlist0000000010k", apiKey: "sk_bench_list_10k", count: 10_000 },
  { name: "list-big", namespaceId: "ns_benchlist00000000big", apiKey: "sk_bench_list_big", count: BIG },
];
const DATAPLANE = process.env.BENCH_SKIP_DATAPLANE !== "1";
// BENCH_DATAPLANE=import: of the data plane, only the embedder and the import (no seeding, clustering or search).
const DATAPLANE_FULL = process.env.BENCH_DATAPLANE !== "import";
const PARTS = new Set((process.env.BENCH_PARTS ?? "load,e2e,webhooks,streams,pull").split(","));
const PULL_TASKS = Number(process.env.BENCH_PULL_TASKS ?? 10_000);
const IMPORT = Number(process.env.BENCH_IMPORT ?? 10_000);
const DP = { name: "bench-dp", namespaceId: "ns_benchdataplane000000", apiKey: "sk_bench_dataplane" };
const PURGE = { name: "purge", namespaceId: "ns_benchpurge0000000000", apiKey: "sk_bench_purge", count: 200_000 };
const ADMIN = "bench-admin-token";
const BASE = `http://127.0.0.1:${PORT}`;
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });

function http(method, url, { token, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${BASE}${url}`,
      {
        method,
        agent,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode, json, text });
        });
      },
    );
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** A closed loop of CONCURRENCY clients for SECONDS; returns requests/s and latency percentiles. */
async function load(name, send) {
  const latencies = [];
  let errors = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const res = await send();
        latencies.push(performance.now() - t0);
        if (res.status >= 300) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(1);
  const result = { name, requests: latencies.length, errors, rps: latencies.length / elapsed, p50: pct(50), p99: pct(99) };
  console.log(`  ${name.padEnd(28)} ${result.rps.toFixed(0).padStart(6)} req/s   p50 ${result.p50} ms   p99 ${result.p99} ms   errors ${errors}`);
  return result;
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Local state on tmpfs where there is one: the figures should measure the service, not this
// machine's disk syncs (production storage is nothing like a local SQLite file).
const state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-bench-"));
const wrangler = path.resolve("node_modules/.bin/wrangler");
execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { stdio: "ignore", env: { ...process.env, CI: "true" } });
if (RECORDS) {
  // Retained records are seeded straight into the local D1 before the service starts: a million
  // tasks through the API would take longer than the benchmark itself.
  const now = Date.now();
  const sql = [
    ...LISTS.flatMap((l, i) => [seedNamespace(l), seedRecords({ namespaceId: l.namespaceId, count: l.count, expiresAt: now + 30 * 86400_000, idPrefix: `l${i}` })]),
    seedNamespace(PURGE),
    seedRecords({ namespaceId: PURGE.namespaceId, count: PURGE.count, expiresAt: now - 86400_000, idPrefix: "p" }),
  ].join("\n");
  const file = path.join(state, "seed.sql");
  writeFileSync(file, sql);
  const t0 = performance.now();
  execFileSync(wrangler, ["d1", "execute", "DB", "--local", "--persist-to", state, "--file", file, "--yes"], { stdio: "ignore", env: { ...process.env, CI: "true" } });
  console.log(`seeded ${LISTS.map((l) => l.count).join(" + ")} + ${PURGE.count} task records in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
let embedder = null;
if (DATAPLANE) embedder = await loadEmbedder(state);
if (DATAPLANE && DATAPLANE_FULL) {
  const sql = [
    seedNamespace(DP),
    seedDocumentsSql(embedder, { namespaceId: DP.namespaceId, collectionId: "col_benchcluster00000000", count: 20_000, prefix: "cl" }),
    seedDocumentsSql(embedder, { namespaceId: DP.namespaceId, collectionId: "col_benchsearch000000000", count: 100_000, prefix: "se", bucketId: "bkt_benchsearch000000000" }),
  ].join("\n");
  const t0 = performance.now();
  execFileSync(wrangler, ["d1", "execute", "DB", "--local", "--persist-to", state, "--file", writeSql(state, "documents.sql", sql), "--yes"], { stdio: "ignore", env: { ...process.env, CI: "true" } });
  console.log(`seeded 20 000 + 100 000 documents in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const server = spawn(
  wrangler,
  ["dev", "--port", String(PORT), "--ip", "127.0.0.1", "--persist-to", state, "--log-level", "warn", "--var", `ADMIN_TOKEN:${ADMIN}`, "--var", "ALLOW_PRIVATE_URLS:true"],
  { stdio: ["ignore", "inherit", "inherit"], detached: true },
);
const processor = await startProcessor({ port: PROCESSOR_PORT, quiet: true });
let purgeSeconds = null;

try {
  await waitFor(async () => (await http("GET", "/health")).status === 200, 60_000, "wrangler dev to serve");
  console.log(`edge-tasks bench: ${CONCURRENCY} concurrent clients, ${SECONDS} s a run, node ${process.version}\n`);

  // The benchmark measures the service, not its rate limit: every namespace it makes or seeds
  // gets the highest requests_per_second (SPEC's default is 100).
  const BENCH_RATE = { requests_per_second: 10_000 };
  const admin = async (name, settings) => {
    const ns = await http("POST", "/v1/namespaces", { token: ADMIN, body: { namespace_name: name, settings: { ...BENCH_RATE, ...settings } } });
    const key = await http("POST", `/v1/namespaces/${name}/api-keys`, { token: ADMIN, body: {} });
    return key.json.api_key;
  };
  for (const seeded of [...(RECORDS ? [...LISTS, PURGE] : []), ...(DATAPLANE && DATAPLANE_FULL ? [DP] : [])]) {
    const res = await http("PATCH", `/v1/namespaces/${seeded.name}`, { token: ADMIN, body: { settings: BENCH_RATE } });
    if (res.status !== 200) throw new Error(`raising the rate of ${seeded.name} failed: ${res.status} ${res.text}`);
  }

  /** GET /health's req/s, the yardstick every figure is divided by (measured once a run). */
  let trivialRps = null;
  const trivialRate = async () => {
    if (trivialRps === null) {
      await load("warm-up", () => http("GET", "/health"));
      trivialRps = (await load("GET /health (trivial)", () => http("GET", "/health"))).rps;
    }
    return trivialRps;
  };

  if (PARTS.has("load")) {
  // 1. Creation against the runtime's own ceiling. The processor accepts and never reports, so
  //    admitted tasks stay processing and the rest wait in the backlog: only creation is measured.
  const createKey = await admin("bench-create", { max_concurrent_tasks: 100 });
  await http("PUT", "/v1/processors/bench_hold", { token: createKey, body: { url: `http://127.0.0.1:${PROCESSOR_PORT}/hold`, lease_seconds: 3600 } });
  const trivial = { rps: await trivialRate() };
  const authed = await load("GET /v1/tasks/stats (auth+DO)", () => http("GET", "/v1/tasks/stats", { token: createKey }));
  const create = await load("POST /v1/tasks", () => http("POST", "/v1/tasks", { token: createKey, body: { task_type: "bench_hold", inputs: { n: 1 } } }));
  console.log(`\n  creation / trivial route: ${(create.rps / trivial.rps).toFixed(2)}   (auth+DO read / trivial: ${(authed.rps / trivial.rps).toFixed(2)})\n`);
  }

  if (PARTS.has("e2e")) {
  // 2. End to end through the loopback processor.
  const e2eKey = await admin("bench-e2e", { max_concurrent_tasks: 100 });
  await http("PUT", "/v1/processors/bench_run", { token: e2eKey, body: { url: `http://127.0.0.1:${PROCESSOR_PORT}/run` } });
  const before = processor.completed();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < E2E_TASKS) {
        next++;
        const res = await http("POST", "/v1/tasks", { token: e2eKey, body: { task_type: "bench_run", inputs: { n: next } } });
        if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.text}`);
      }
    }),
  );
  const createdIn = (performance.now() - t0) / 1000;
  await waitFor(
    async () => {
      const s = (await http("GET", "/v1/tasks/stats", { token: e2eKey })).json;
      return s.created + s.queued + s.processing === 0;
    },
    600_000,
    "every task to finish",
  );
  const elapsed = (performance.now() - t0) / 1000;
  console.log(`  end to end: ${E2E_TASKS} tasks created in ${createdIn.toFixed(1)} s, all finished in ${elapsed.toFixed(1)} s`);
  console.log(`  → ${(E2E_TASKS / elapsed).toFixed(0)} tasks/s create → completed (limit 100 at once)`);
  const ended = {};
  // Lists read the mirrored records, about half a second behind; and the last completion answers
  // may still be on their way back to the processor when the service already counts the tasks done.
  await new Promise((r) => setTimeout(r, 2000));
  const completed = processor.completed() - before;
  for (const status of ["completed", "failed", "cancelled"]) {
    ended[status] = (await http("GET", `/v1/tasks?status=${status}&limit=1&include_total=true`, { token: e2eKey })).json?.pagination?.total;
  }
  console.log(`    tasks ended: ${JSON.stringify(ended)}; the processor's completion reports were answered ${JSON.stringify(processor.answers())}`);
  }

  if (PARTS.has("webhooks")) {
  // 4. Webhooks. A local endpoint counts what it receives; one namespace has an endpoint for
  //    every event type, another none, and both create the same tasks one at a time.
  const hookPort = PORT + 2;
  const seen = new Set();
  const sink = createServer((req, res) => {
    seen.add(req.headers["webhook-id"]);
    req.resume();
    req.on("end", () => res.writeHead(200).end());
  });
  await new Promise((r) => sink.listen(hookPort, "127.0.0.1", r));
  const quietKey = await admin("bench-quiet", { max_concurrent_tasks: 1000 });
  const hookKey = await admin("bench-hooked", { max_concurrent_tasks: 1000 });
  for (const key of [quietKey, hookKey]) {
    await http("PUT", "/v1/processors/bench_hold", { token: key, body: { url: `http://127.0.0.1:${PROCESSOR_PORT}/hold`, lease_seconds: 3600 } });
  }
  await http("POST", "/v1/webhooks", { token: hookKey, body: { url: `http://127.0.0.1:${hookPort}/hook`, event_types: ["*"] } });
  const sequential = async (key, n) => {
    const latencies = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const res = await http("POST", "/v1/tasks", { token: key, body: { task_type: "bench_hold" } });
      latencies.push(performance.now() - t0);
      if (res.status !== 201) throw new Error(`create failed: ${res.status}`);
    }
    latencies.sort((a, b) => a - b);
    return { p50: latencies[Math.floor(n / 2)], p99: latencies[Math.floor(n * 0.99)] };
  };
  await sequential(quietKey, 50);
  await sequential(hookKey, 50);
  const quiet = await sequential(quietKey, 300);
  const hooked = await sequential(hookKey, 300);
  console.log(`\n  POST /v1/tasks one at a time, no webhook        p50 ${quiet.p50.toFixed(1)} ms   p99 ${quiet.p99.toFixed(1)} ms`);
  console.log(`  POST /v1/tasks one at a time, active webhook   p50 ${hooked.p50.toFixed(1)} ms   p99 ${hooked.p99.toFixed(1)} ms` +
    `   (p50 ${hooked.p50 - quiet.p50 >= 0 ? "+" : ""}${(hooked.p50 - quiet.p50).toFixed(1)} ms)`);

  // Delivery rate: a burst of tasks, three events each (created, queued, processing), all to the sink.
  await waitFor(async () => seen.size >= 350 * 3, 120_000, "the warm-up events to arrive");
  const burstKey = await admin("bench-burst", { max_concurrent_tasks: 1000 });
  await http("PUT", "/v1/processors/bench_hold", { token: burstKey, body: { url: `http://127.0.0.1:${PROCESSOR_PORT}/hold`, lease_seconds: 3600 } });
  await http("POST", "/v1/webhooks", { token: burstKey, body: { url: `http://127.0.0.1:${hookPort}/hook`, event_types: ["*"] } });
  const seenBefore = seen.size;
  const burst = 900;
  const tHooks = performance.now();
  let made = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (made < burst) {
      made++;
      await http("POST", "/v1/tasks", { token: burstKey, body: { task_type: "bench_hold" } });
    }
  }));
  await waitFor(async () => seen.size >= seenBefore + burst * 3, 300_000, "every event to be delivered");
  const hookSeconds = (performance.now() - tHooks) / 1000;
  console.log(`  webhook deliveries: ${burst * 3} events in ${hookSeconds.toFixed(1)} s → ${(burst * 3 / hookSeconds).toFixed(0)} events/s (creation included)`);
  sink.close();
  }

  if (PARTS.has("pull")) {
    // 7. Pull mode. First batch creation alone: a pulled type nobody leases, so tasks only pile up.
    console.log("");
    const trivial = await trivialRate();
    const holdKey = await admin("bench-batch", { max_concurrent_tasks: 100 });
    await http("PUT", "/v1/processors/bench_pull_hold", { token: holdKey, body: { mode: "pull" } });
    const hundred = (type) => ({ tasks: Array.from({ length: 100 }, (_, i) => ({ task_type: type, inputs: { n: i } })) });
    const batches = await load("POST /v1/tasks/batch (×100)", () => http("POST", "/v1/tasks/batch", { token: holdKey, body: hundred("bench_pull_hold") }));
    const batchTasks = batches.rps * 100;
    console.log(`  batch create: ${batchTasks.toFixed(0)} tasks/s → ${(batchTasks / trivial).toFixed(2)} × the trivial route's req/s`);

    // End to end: batch creates and one pull worker that leases up to 100 and reports in batches.
    const pullKey = await admin("bench-pull", { max_concurrent_tasks: 1000 });
    await http("PUT", "/v1/processors/bench_pull", { token: pullKey, body: { mode: "pull", lease_seconds: 300 } });
    const worker = startPullWorker({ baseUrl: BASE, apiKey: pullKey, taskType: "bench_pull", concurrency: 100, waitSeconds: 5, quiet: true });
    const t0 = performance.now();
    let sent = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (sent < PULL_TASKS) {
        sent += 100;
        const res = await http("POST", "/v1/tasks/batch", { token: pullKey, body: hundred("bench_pull") });
        if (res.status !== 201) throw new Error(`batch create failed: ${res.status} ${res.text.slice(0, 200)}`);
      }
    }));
    const createdIn = (performance.now() - t0) / 1000;
    await waitFor(async () => {
      const s = (await http("GET", "/v1/tasks/stats", { token: pullKey })).json;
      return s.created + s.queued + s.processing === 0;
    }, 600_000, "every pulled task to finish");
    const elapsed = (performance.now() - t0) / 1000;
    await worker.stop();
    const pullRate = sent / elapsed;
    console.log(`  pull end to end: ${sent} tasks created in ${createdIn.toFixed(1)} s, all finished in ${elapsed.toFixed(1)} s`);
    console.log(`  → ${pullRate.toFixed(0)} tasks/s create → completed (limit 1000 at once) → ${(pullRate / trivial).toFixed(2)} × the trivial route's req/s`);
    console.log(`    the worker's reports were answered ${JSON.stringify(worker.answers())}`);
  }

  if (PARTS.has("streams")) await benchStreams({ base: BASE, http, admin, processorPort: PROCESSOR_PORT, serverGroup: server.pid });

  if (RECORDS) {
    // 3. A filtered list page (status=completed, 20 a page) at a random depth, one request at a time.
    console.log("");
    // The cursor format of src/cursor.ts: the list (tasks by creation, newest first) and the seq to start after.
    const cursorAt = (seq) => Buffer.from(JSON.stringify({ l: "tasks:created_at:desc", p: [seq] })).toString("base64url");
    const listed = {};
    for (const l of LISTS) {
      const latencies = [];
      for (let i = 0; i < 300; i++) {
        const seq = 1 + Math.floor(Math.random() * l.count);
        const t0 = performance.now();
        const res = await http("GET", `/v1/tasks?status=completed&limit=20&cursor=${cursorAt(seq)}`, { token: l.apiKey });
        latencies.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(`list failed: ${res.status} ${res.text}`);
      }
      latencies.sort((a, b) => a - b);
      listed[l.name] = { p50: latencies[150], p99: latencies[296] };
      console.log(`  list page, ${String(l.count).padStart(7)} records   p50 ${latencies[150].toFixed(1)} ms   p99 ${latencies[296].toFixed(1)} ms`);
    }
    const [small, big] = LISTS.map((l) => listed[l.name]);
    console.log(`  ${BIG.toLocaleString("en")} / 10 000 records: p50 × ${(big.p50 / small.p50).toFixed(2)}, p99 × ${(big.p99 / small.p99).toFixed(2)}`);

    // The cron's purge over 100 000 expired records (and as many live ones it must keep). One run
    // may delete up to 120 000 rows; what is left is counted once the server has stopped.
    const t0 = performance.now();
    const res = await http("GET", `/cdn-cgi/local/scheduled?time=${Date.now()}`);
    if (res.status !== 200) throw new Error(`scheduled failed: ${res.status} ${res.text}`);
    purgeSeconds = (performance.now() - t0) / 1000;
  }

  if (DATAPLANE) {
    // 5. The data plane.
    console.log("");
    console.log(`  embedder alone (node ${process.version}): ${embedRate(embedder).toFixed(0)} documents/s`);

    const importKey = await admin("bench-import", { max_concurrent_tasks: 100 });
    const bucket = (await http("POST", "/v1/buckets", { token: importKey, body: { bucket_name: "bulk" } })).json;
    for (const name of ["first", "second"]) {
      await http("POST", "/v1/collections", { token: importKey, body: { collection_name: name, source_bucket_ids: [bucket.bucket_id] } });
    }
    const objects = Array.from({ length: IMPORT }, (_, i) => ({ content: text(i), metadata: { n: i } }));
    const tImport = performance.now();
    const batch = await http("POST", `/v1/buckets/${bucket.bucket_id}/objects/batch`, { token: importKey, body: { objects } });
    if (batch.status !== 202) throw new Error(`batch failed: ${batch.status} ${batch.text.slice(0, 200)}`);
    let importedAt = null;
    await waitFor(async () => {
      const task = (await http("GET", `/v1/tasks/${batch.json.task.task_id}`, { token: importKey })).json;
      if (task.status === "completed" && importedAt === null) importedAt = performance.now();
      if (task.status === "failed" || task.status === "cancelled") throw new Error(`import ${task.status}`);
      const s = (await http("GET", "/v1/tasks/stats", { token: importKey })).json;
      return task.status === "completed" && s.created + s.queued + s.processing === 0;
    }, 3_600_000, "the import and its children");
    const importSeconds = (performance.now() - tImport) / 1000;
    console.log(`  batch_import of ${IMPORT} objects, two collections: objects in ${((importedAt - tImport) / 1000).toFixed(1)} s, ` +
      `all ${IMPORT * 2} documents in ${importSeconds.toFixed(1)} s → ${((IMPORT * 2) / importSeconds).toFixed(0)} documents/s end to end`);
    console.log(`  import documents/s ÷ trivial route req/s: ${((IMPORT * 2) / importSeconds / (await trivialRate())).toFixed(2)}`);

    if (DATAPLANE_FULL) {
    const tCluster = performance.now();
    const cluster = await http("POST", "/v1/collections/col_benchcluster00000000/cluster", { token: DP.apiKey, body: { k: 10, max_iterations: 20, seed: 1 } });
    if (cluster.status !== 202) throw new Error(`cluster failed: ${cluster.status} ${cluster.text.slice(0, 200)}`);
    let clustered = null;
    await waitFor(async () => {
      clustered = (await http("GET", `/v1/tasks/${cluster.json.task.task_id}`, { token: DP.apiKey })).json;
      if (clustered.status === "failed") throw new Error(`clustering failed: ${JSON.stringify(clustered.error)}`);
      return clustered.status === "completed";
    }, 1_800_000, "clustering");
    console.log(`  clustering of 20 000 documents (k 10, ${clustered.outputs.iterations} iterations): ${((performance.now() - tCluster) / 1000).toFixed(1)} s`);

    console.log(formatSearch("100 000 documents", await searchLatency(http, DP.apiKey, "col_benchsearch000000000", { n: 200, bucket: "bkt_benchsearch000000000" })));
    }
  }
} finally {
  try {
    process.kill(-server.pid, "SIGTERM");
  } catch {}
  await processor.close();
  agent.destroy();
  if (purgeSeconds !== null) {
    await new Promise((r) => setTimeout(r, 1000));
    const out = execFileSync(
      wrangler,
      ["d1", "execute", "DB", "--local", "--persist-to", state, "--json", "--command",
        `SELECT SUM(expires_at IS NOT NULL) AS expired, SUM(expires_at IS NULL) AS live FROM task_records WHERE namespace_id = '${PURGE.namespaceId}'`],
      { env: { ...process.env, CI: "true" } },
    ).toString();
    const row = JSON.parse(out)[0].results[0];
    console.log(`  purge of ${PURGE.count / 2} expired records: ${purgeSeconds.toFixed(1)} s in one cron run` +
      ` (left: ${row.expired} expired, ${row.live} live kept)`);
  }
  rmSync(state, { recursive: true, force: true });
}

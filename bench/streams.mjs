// Part 6 of npm run bench: real-time tracking.
//   - event latency from a transition to a Server-Sent Events listener (p50, p99), with one
//     listener and with LISTENERS listeners on the same namespace;
//   - how many idle WebSocket listeners one namespace holds, and the memory each costs in the
//     runtime (resident set of the workerd processes before and after, divided by the count).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";

const LISTENERS = Number(process.env.BENCH_LISTENERS ?? 100);
const SOCKETS = Number(process.env.BENCH_SOCKETS ?? 4000);
const EVENTS = Number(process.env.BENCH_STREAM_TASKS ?? 200);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

/** An SSE listener over node:http that records when each event arrived. */
function listen(base, path, token, onEvent) {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`));
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        const arrived = Date.now();
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").find((l) => l.startsWith("data: "));
          if (data) onEvent(JSON.parse(data.slice(6)), arrived);
        }
      });
      resolve(() => req.destroy());
    });
    req.on("error", () => undefined);
    req.end();
  });
}

/**
 * Resident memory, in bytes, of the server's two workerd processes: the one running the Worker
 * and its Durable Objects (started with an inspector port) and wrangler's local proxy in front.
 */
function workerdRss(group) {
  const rss = { runtime: 0, proxy: 0 };
  let pids = [];
  try {
    pids = execFileSync("ps", ["-o", "pid=,comm=", "-g", String(group)])
      .toString()
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, comm]) => comm === "workerd")
      .map(([pid]) => pid);
  } catch {
    return null;
  }
  for (const pid of pids) {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      rss[cmdline.includes("--inspector-addr") ? "runtime" : "proxy"] += kb * 1024;
    } catch {}
  }
  return rss;
}

async function eventLatency({ base, http, admin, processorPort, listeners }) {
  const key = await admin(`bench-sse-${listeners}`, { max_concurrent_tasks: 1000 });
  await http("PUT", "/v1/processors/bench_hold", { token: key, body: { url: `http://127.0.0.1:${processorPort}/hold`, lease_seconds: 3600 } });
  const latencies = [];
  const closers = [];
  let received = 0;
  for (let i = 0; i < listeners; i++) {
    closers.push(
      await listen(base, "/v1/events", key, (body, arrived) => {
        received++;
        latencies.push(arrived - Date.parse(body.created_at));
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 300));
  // One task at a time, created then cancelled: created, queued, processing (from the
  // dispatch) and cancelled, each measured from the event's own timestamp.
  for (let i = 0; i < EVENTS; i++) {
    const task = (await http("POST", "/v1/tasks", { token: key, body: { task_type: "bench_hold" } })).json;
    await http("POST", `/v1/tasks/${task.task_id}/cancel`, { token: key });
  }
  const stored = async () => {
    const deadline = Date.now() + 60_000;
    let last = -1;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (received === last) return;
      last = received;
    }
  };
  await stored();
  for (const close of closers) close();
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

async function idleSockets({ base, http, admin, serverGroup }) {
  const key = await admin("bench-sockets", { max_concurrent_tasks: 1000 });
  await http("PUT", "/v1/processors/bench_hold", { token: key, body: { url: "http://127.0.0.1:9/never", lease_seconds: 3600 } });
  const url = `${base.replace(/^http/, "ws")}/v1/events?status=created`;
  // Wake the namespace's object first, so that its own start is not counted per listener.
  await http("GET", "/v1/tasks/stats", { token: key });
  await new Promise((r) => setTimeout(r, 1000));
  const before = workerdRss(serverGroup);
  const sockets = [];
  let opened = 0;
  let failed = 0;
  let heard = 0;
  const closes = {};
  for (let i = 0; i < SOCKETS; i += 100) {
    const batch = Array.from({ length: Math.min(100, SOCKETS - i) }, () =>
      new Promise((resolve) => {
        const ws = new WebSocket(url, ["edge-tasks", `bearer.${key}`]);
        ws.addEventListener("open", () => {
          opened++;
          resolve();
        });
        ws.addEventListener("error", () => {
          failed++;
          resolve();
        });
        ws.addEventListener("message", () => heard++);
        ws.addEventListener("close", (e) => (closes[e.code] = (closes[e.code] ?? 0) + 1));
        sockets.push(ws);
      }),
    );
    await Promise.all(batch);
  }
  await new Promise((r) => setTimeout(r, 3000));
  const after = workerdRss(serverGroup);
  // Every idle listener still hears the next event.
  await http("POST", "/v1/tasks", { token: key, body: { task_type: "bench_hold" } });
  const deadline = Date.now() + 60_000;
  while (heard < opened && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  for (const ws of sockets) ws.close();
  if (heard < opened) console.log("  closed early:", JSON.stringify(closes));
  const per = (part) => (before !== null && after !== null ? (after[part] - before[part]) / Math.max(1, opened) : null);
  return { opened, failed, heard, runtime: per("runtime"), proxy: per("proxy") };
}

export async function benchStreams(ctx) {
  console.log("");
  for (const listeners of [1, LISTENERS]) {
    const r = await eventLatency({ ...ctx, listeners });
    console.log(`  event → SSE listener, ${String(listeners).padStart(3)} listener(s): ${r.count} events, p50 ${r.p50} ms, p99 ${r.p99} ms (from the event's created_at)`);
  }
  const s = await idleSockets(ctx);
  console.log(
    `  idle WebSocket listeners on one namespace: ${s.opened} open (${s.failed} refused), ${s.heard} heard the next event; ` +
      (s.runtime === null
        ? "memory not measured"
        : `resident memory per listener ≈ ${(s.runtime / 1024).toFixed(1)} KiB in the Worker's runtime, ${(s.proxy / 1024).toFixed(1)} KiB in wrangler's local proxy`),
  );
}

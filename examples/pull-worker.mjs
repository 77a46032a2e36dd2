#!/usr/bin/env node
// A minimal pull worker for edge-tasks: for a machine that cannot take inbound HTTPS (a GPU box
// behind NAT). It needs no server of its own, only outbound requests with the namespace's API key.
//
//   EDGE_TASKS_API_KEY=sk_... node examples/pull-worker.mjs transcode
//   EDGE_TASKS_URL=http://127.0.0.1:8787 PULL_CONCURRENCY=20 PULL_WORK_MS=2000 node examples/pull-worker.mjs transcode
//
// Register the type for pulling first:
//   curl -X PUT $API/v1/processors/transcode -H "Authorization: Bearer $KEY" \
//     -H 'Content-Type: application/json' -d '{"mode":"pull","lease_seconds":60}'
//
// It leases up to PULL_CONCURRENCY tasks at a time (long-polling 20 s for work), reports a
// progress line and a log line, then completes each task; every report goes out in batches of
// up to 100 through POST /v1/callbacks. `client.work()` of edge-tasks/client does the same with
// your own handler, and renews leases for long work.
import { pathToFileURL } from "node:url";

async function post(baseUrl, apiKey, path, body, signal) {
  const response = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** The most reports one POST /v1/callbacks takes (SPEC §6). */
const REPORTS_PER_CALL = 100;

/**
 * Starts a pull worker; `stop()` ends it once the reports in hand are sent. `completed()` counts
 * the tasks the service accepted as completed, `answers()` the report results by status.
 * `reportCalls` report calls may be out at once (a report call is mostly waiting on the network).
 */
export function startPullWorker({ baseUrl = "http://127.0.0.1:8787", apiKey, taskType, concurrency = 10, workMs = 0, waitSeconds = 20, reportCalls = 2, quiet = false }) {
  const stopper = new AbortController();
  let pending = [];
  /** Tokens with a report call out: their later reports wait for its answer. */
  const tokensOut = new Set();
  const answers = {};
  let active = 0;
  let completed = 0;
  const flusherWakes = new Set();
  const wakeFlusher = () => {
    for (const wake of flusherWakes) wake();
    flusherWakes.clear();
  };
  let wakeLeaser = () => {};

  /** Up to REPORTS_PER_CALL pending reports whose attempt has no report call out, oldest first. */
  const takeReports = () => {
    const taken = [];
    const left = [];
    for (const report of pending) {
      if (taken.length < REPORTS_PER_CALL && !tokensOut.has(report.token)) taken.push(report);
      else left.push(report);
    }
    pending = left;
    for (const report of taken) tokensOut.add(report.token);
    return taken;
  };

  const work = async (lease) => {
    const { token } = lease.callback;
    try {
      if (workMs > 0) {
        pending.push({ token, type: "progress", percent: 50, message: "halfway" });
        pending.push({ token, type: "logs", lines: [{ message: `working on ${lease.task.task_type}` }] });
        wakeFlusher();
        await new Promise((r) => setTimeout(r, workMs));
      }
      pending.push({ token, type: "complete", outputs: { input_keys: Object.keys(lease.task.inputs) } });
    } catch (err) {
      pending.push({ token, type: "fail", error: { code: "worker_error", message: String(err) } });
    } finally {
      active--;
      wakeFlusher();
      wakeLeaser();
    }
  };

  const leaser = (async () => {
    while (!stopper.signal.aborted) {
      if (active >= concurrency) {
        await new Promise((r) => (wakeLeaser = r));
        continue;
      }
      try {
        const { leases } = await post(baseUrl, apiKey, `/v1/processors/${taskType}/lease`, { max_tasks: Math.min(100, concurrency - active), wait_seconds: waitSeconds }, stopper.signal);
        active += leases.length;
        for (const lease of leases) void work(lease);
      } catch (err) {
        if (stopper.signal.aborted) break;
        if (!quiet) console.error(`lease failed: ${err.message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  const flusher = async () => {
    for (;;) {
      const reports = takeReports();
      if (reports.length === 0) {
        if (stopper.signal.aborted && active === 0 && pending.length === 0 && tokensOut.size === 0) return;
        await new Promise((r) => {
          flusherWakes.add(r);
          if (stopper.signal.aborted && tokensOut.size === 0) r();
        });
        continue;
      }
      try {
        const { results } = await post(baseUrl, apiKey, "/v1/callbacks", { reports });
        results.forEach((result, i) => {
          answers[result.status] = (answers[result.status] ?? 0) + 1;
          if (reports[i].type !== "complete") return;
          if (result.status === 200) completed++;
          if (!quiet) console.log(`${result.task_id}: complete → ${result.status}`);
        });
      } catch (err) {
        if (!quiet) console.error(`reports failed: ${err.message}`);
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        for (const report of reports) tokensOut.delete(report.token);
        // Reports held behind this call may go now.
        wakeFlusher();
      }
    }
  };
  const flushers = Promise.all(Array.from({ length: Math.max(1, reportCalls) }, flusher));

  return {
    completed: () => completed,
    answers: () => ({ ...answers }),
    stop: async () => {
      stopper.abort();
      wakeLeaser();
      wakeFlusher();
      await leaser;
      await flushers;
    },
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const taskType = process.argv[2];
  const apiKey = process.env.EDGE_TASKS_API_KEY;
  if (!taskType || !apiKey) {
    console.error("usage: EDGE_TASKS_API_KEY=sk_... node examples/pull-worker.mjs <task_type>");
    process.exit(2);
  }
  const worker = startPullWorker({
    baseUrl: process.env.EDGE_TASKS_URL ?? "http://127.0.0.1:8787",
    apiKey,
    taskType,
    concurrency: Number(process.env.PULL_CONCURRENCY ?? 10),
    workMs: Number(process.env.PULL_WORK_MS ?? 1000),
  });
  console.log(`pulling ${taskType}; Ctrl-C stops after the reports in hand are sent`);
  process.once("SIGINT", () => void worker.stop().then(() => process.exit(0)));
}

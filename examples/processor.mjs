#!/usr/bin/env node
// A minimal external processor for edge-tasks, for local development and the benchmark.
//
//   node examples/processor.mjs            # listens on 127.0.0.1:8788
//   PROCESSOR_PORT=9001 PROCESSOR_WORK_MS=2000 node examples/processor.mjs
//
// It accepts every dispatch at once (202), then works the task in the background: a progress
// report, a log line, and the completion, each through the callback URL with the attempt's token.
// With PROCESSOR_SECRET set (the whsec_ secret shown when the processor was registered) it
// verifies the Standard Webhooks signature of every dispatch and refuses bad ones with 401.
import { createHmac, timingSafeEqual } from "node:crypto";
import { Agent as HttpAgent, createServer, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { pathToFileURL } from "node:url";


function verify(secret, headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = String(headers["webhook-signature"] ?? "").split(" ");
  if (!id || !timestamp || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = Buffer.from(createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64"));
  return signatures.some((s) => {
    const given = Buffer.from(s.replace(/^v1,/, ""));
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

// Callbacks go out over kept-alive connections, one pool per protocol: a processor reports for
// every task it takes, and node:http costs it about a third less CPU a call than fetch.
const clients = {
  "http:": { request: httpRequest, agent: new HttpAgent({ keepAlive: true }) },
  "https:": { request: httpsRequest, agent: new HttpsAgent({ keepAlive: true }) },
};

/** POSTs `body` as JSON with the attempt's token; resolves to the answer's status. */
function post(url, token, body) {
  const payload = JSON.stringify(body);
  const { request, agent } = clients[new URL(url).protocol] ?? clients["https:"];
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/**
 * Starts the processor. `work(dispatch, report)` does the task; by default it reports progress,
 * logs a line and completes with a summary of the inputs after `workMs`.
 */
export function startProcessor({ port = 8788, host = "127.0.0.1", secret, workMs = 0, quiet = false } = {}) {
  let completed = 0;
  /** Answers to completion reports, by status code: anything but 200 means the attempt had ended. */
  const answers = {};
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      if (secret && !verify(secret, req.headers, body)) {
        res.writeHead(401).end("bad signature");
        return;
      }
      let dispatch;
      try {
        dispatch = JSON.parse(body);
      } catch {
        res.writeHead(400).end("bad json");
        return;
      }
      res.writeHead(202, { "content-type": "text/plain", "content-length": 8 }).end("accepted");
      // A dispatch to /hold is accepted and never reported on: the benchmark uses it to keep
      // tasks processing.
      if (req.url === "/hold") return;
      const { url, token } = dispatch.callback;
      const run = async () => {
        if (workMs > 0) {
          await post(`${url}/progress`, token, { percent: 50, message: "halfway" });
          await post(`${url}/logs`, token, { lines: [{ message: `working on ${dispatch.task.task_type}` }] });
          await new Promise((r) => setTimeout(r, workMs));
        }
        const status = await post(`${url}/complete`, token, { outputs: { input_keys: Object.keys(dispatch.task.inputs) } });
        if (status === 200) completed++;
        answers[status] = (answers[status] ?? 0) + 1;
        if (!quiet) console.log(`${dispatch.task.task_id} attempt ${dispatch.attempt}: complete → ${status}`);
      };
      run().catch((err) => console.error(`${dispatch.task.task_id}: ${err}`));
    });
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) =>
    server.listen(port, host, () => resolve({ server, completed: () => completed, answers: () => ({ ...answers }), close: () => new Promise((r) => server.close(r)) })),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const port = Number(process.env.PROCESSOR_PORT ?? 8788);
  await startProcessor({ port, secret: process.env.PROCESSOR_SECRET, workMs: Number(process.env.PROCESSOR_WORK_MS ?? 1000) });
  console.log(`processor listening on http://127.0.0.1:${port}`);
}

#!/usr/bin/env node
// `npm run demo`: the whole product in one run against the local service (`npm start`). It makes
// a namespace and an API key, a bucket and a collection, batch-imports examples/corpus.jsonl
// (300 short texts on five topics), clusters the documents, and shows the tasks' progress live
// from the event stream until they finish; then prints the cluster sizes and what is in them.
//
//   EDGE_TASKS_URL          the service (default http://localhost:8787)
//   EDGE_TASKS_ADMIN_TOKEN  its ADMIN_TOKEN (default dev-admin-token, as in .dev.vars)
import { readFile } from "node:fs/promises";
import { ApiError, createClient, NetworkError } from "../dist/client.mjs";
import { bar, ProgressBoard } from "../dist/cli.mjs";

const baseUrl = process.env.EDGE_TASKS_URL || "http://localhost:8787";
const adminToken = process.env.EDGE_TASKS_ADMIN_TOKEN || "dev-admin-token";
const CLUSTERS = 5;
const out = process.stdout;
const say = (text = "") => out.write(`${text}\n`);

async function main() {
  const admin = createClient({ baseUrl, apiKey: adminToken, retries: 1 });
  const name = `demo-${Date.now().toString(36)}`;
  // A service that accepts connections but never answers should not hang the demo silently.
  const namespace = await admin.request("POST", "/v1/namespaces", { body: { namespace_name: name }, signal: AbortSignal.timeout(15_000) });
  const key = await admin.request("POST", `/v1/namespaces/${name}/api-keys`, { body: { name: "demo" } });
  say(`namespace   ${namespace.namespace_id} (${name})`);
  say(`api key     ${key.api_key}`);
  say(`            try: EDGE_TASKS_URL=${baseUrl} EDGE_TASKS_API_KEY=${key.api_key} npx edge-tasks list`);

  const client = createClient({ baseUrl, apiKey: key.api_key });
  const bucket = await client.request("POST", "/v1/buckets", { body: { bucket_name: "articles", description: "the demo corpus" } });
  const collection = await client.request("POST", "/v1/collections", { body: { collection_name: "articles", source_bucket_ids: [bucket.bucket_id] } });
  say(`bucket      ${bucket.bucket_id}`);
  say(`collection  ${collection.collection_id}`);

  const corpusUrl = new URL("../examples/corpus.jsonl", import.meta.url);
  const corpus = (await readFile(corpusUrl, "utf8"))
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
  const objects = corpus.map((doc, i) => ({ key: `doc-${String(i).padStart(3, "0")}`, content: doc.text, metadata: { topic: doc.topic } }));
  say(`corpus      ${objects.length} texts on ${new Set(corpus.map((d) => d.topic)).size} topics, from examples/corpus.jsonl`);
  say();

  const board = new ProgressBoard(out);
  const { task: importTask } = await client.request("POST", `/v1/buckets/${bucket.bucket_id}/objects/batch`, { body: { objects } });
  board.update(importTask);
  const children = followChildren(client, board, objects.length);
  const imported = await client.waitForTask(importTask.task_id, { onProgress: (t) => board.update(t) });
  board.update(imported);
  await children.done(imported.outputs?.tasks_created ?? objects.length);

  const { task: clusterTask } = await client.request("POST", `/v1/collections/${collection.collection_id}/cluster`, { body: { k: CLUSTERS, seed: 3 } });
  board.update(clusterTask);
  const clustered = await client.waitForTask(clusterTask.task_id, { onProgress: (t) => board.update(t) });
  board.update(clustered);
  say();

  await printClusters(client, collection.collection_id, clustered.outputs);
}

/**
 * One row for the batch's object_create children, fed by the namespace's event stream (from its
 * start, so none is missed): how many ended, and how many wait under the concurrency limit.
 */
function followChildren(client, board, expected) {
  const statuses = new Map();
  const controller = new AbortController();
  let total = expected;
  let settle;
  const finished = new Promise((resolve) => (settle = resolve));
  const draw = () => {
    const counts = { created: 0, queued: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
    for (const status of statuses.values()) counts[status]++;
    const ended = counts.completed + counts.failed + counts.cancelled;
    const percent = total === 0 ? 100 : Math.min(100, (ended / total) * 100);
    const icon = ended >= total ? (counts.failed + counts.cancelled > 0 ? "❌" : "✅") : "⚙️";
    const waiting = counts.created + counts.queued + counts.processing;
    board.set(
      "children",
      `${icon} ${bar(percent)} ${String(Math.floor(percent)).padStart(3)}% object_create ${ended}/${total} ended` +
        (waiting ? ` (⚙️ ${counts.processing} processing, ⏱️ ${counts.queued} queued, 🟢 ${counts.created} waiting)` : "") +
        (counts.failed ? ` ❌ ${counts.failed} failed` : ""),
      `${Math.floor(percent / 10)}:${counts.failed}`,
    );
    if (ended >= total && statuses.size >= total) settle();
  };
  draw();
  const reading = (async () => {
    try {
      for await (const event of client.events({ task_type: "object_create" }, { lastEventId: "0", signal: controller.signal })) {
        statuses.set(event.data.task.task_id, event.data.task.status);
        draw();
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    }
  })();
  return {
    async done(count) {
      total = count;
      draw();
      await Promise.race([finished, reading]);
      controller.abort();
      await reading;
    },
  };
}

async function printClusters(client, collectionId, outputs) {
  const byCluster = new Map();
  let cursor;
  do {
    const page = await client.request("GET", `/v1/collections/${collectionId}/documents`, { query: { limit: 100, cursor } });
    for (const doc of page.results) {
      const topics = byCluster.get(doc.cluster_id) ?? new Map();
      topics.set(doc.metadata.topic, (topics.get(doc.metadata.topic) ?? 0) + 1);
      byCluster.set(doc.cluster_id, topics);
    }
    cursor = page.pagination.next_cursor ?? undefined;
  } while (cursor);

  say(`k-means: k=${outputs.k}, ${outputs.iterations} iterations, inertia ${Number(outputs.inertia).toFixed(3)}`);
  say();
  say("cluster  size  topics");
  const sizes = outputs.cluster_sizes;
  const order = Object.keys(sizes).sort((a, b) => Number(a) - Number(b));
  for (const id of order) {
    const topics = [...(byCluster.get(Number(id)) ?? new Map()).entries()].sort((a, b) => b[1] - a[1]);
    const mix = topics.map(([topic, n]) => `${topic} ${n}`).join(", ");
    say(`${String(id).padStart(7)}  ${String(sizes[id]).padStart(4)}  ${bar((sizes[id] / Math.max(...Object.values(sizes))) * 100, 16)}  ${mix}`);
  }
}

main().catch((error) => {
  if (error?.name === "TimeoutError") {
    process.stderr.write(`demo: ${baseUrl} did not answer within 15 s; is the service healthy?\n`);
  } else if (error instanceof NetworkError) {
    process.stderr.write(`demo: cannot reach ${baseUrl}: is the service running? Start it with \`npm start\` (or set EDGE_TASKS_URL).\n`);
  } else if (error instanceof ApiError) {
    const hint = error.status === 401 ? " (set EDGE_TASKS_ADMIN_TOKEN to the service's ADMIN_TOKEN)" : "";
    process.stderr.write(`demo: ${error.type} (HTTP ${error.status}): ${error.message}${hint}\n`);
  } else {
    process.stderr.write(`demo: ${error?.stack ?? error}\n`);
  }
  process.exitCode = 1;
});

#!/usr/bin/env node
// `npm run demo`: the whole product in one run against the local service (`npm start`). It makes
// a namespace and an API key, a bucket and a collection, batch-imports examples/corpus.jsonl
// (300 short texts on five topics), clusters the documents, and shows the tasks' progress live
// from the event stream until they finish; then prints the cluster sizes and what is in them,
// and whether every topic got a cluster of its own (exit code 1 if not).
//
//   EDGE_TASKS_URL          the service (default http://localhost:8787)
//   EDGE_TASKS_ADMIN_TOKEN  its ADMIN_TOKEN (default dev-admin-token, as in .dev.vars)
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { ApiError, createClient, NetworkError } from "../dist/client.mjs";
import { bar, ProgressBoard } from "../dist/cli.mjs";

const baseUrl = process.env.EDGE_TASKS_URL || "http://localhost:8787";
const adminToken = process.env.EDGE_TASKS_ADMIN_TOKEN || "dev-admin-token";
const CLUSTERS = 5;
// k-means stops in a local optimum that depends on its seed and on the documents' order, and the
// order changes from run to run (document ids are random): one seed alone merged two of the five
// topics in about one run of five. The demo clusters with each of these seeds and keeps the
// lowest inertia, a choice that never looks at the topics; that separated all five in 300 of 300
// simulated orders (one seed: 238 to 256 of 300).
const SEEDS = [1, 2, 3, 4];
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

  const cluster = async (seed) => {
    const { task } = await client.request("POST", `/v1/collections/${collection.collection_id}/cluster`, { body: { k: CLUSTERS, seed } });
    board.update(task);
    const done = await client.waitForTask(task.task_id, { onProgress: (t) => board.update(t) });
    board.update(done);
    return { seed, outputs: done.outputs };
  };
  let best = null;
  let last = null;
  for (const seed of SEEDS) {
    last = await cluster(seed);
    if (best === null || last.outputs.inertia < best.outputs.inertia) best = last;
  }
  // The documents hold the last run's clusters: run the best seed again (the same result, as the
  // collection's documents and their order have not changed).
  if (best.seed !== last.seed) last = await cluster(best.seed);
  say();
  say(`seeds ${SEEDS.join(", ")} tried; seed ${best.seed} has the lowest inertia`);

  if (!(await printClusters(client, collection.collection_id, last.outputs))) process.exitCode = 1;
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
  say();
  const verdict = topicSeparation(byCluster);
  say(verdict.line);
  return verdict.separated;
}

/**
 * Whether k-means found the corpus's topics: each topic is the majority of exactly one cluster.
 * Two topics sharing a cluster (and one topic split over two) is the failure a bad seeding causes.
 */
export function topicSeparation(byCluster) {
  const allTopics = new Set();
  const owner = new Map(); // topic → the clusters where it is the majority
  let total = 0;
  let inMajority = 0;
  for (const [cluster, topics] of byCluster) {
    const ranked = [...topics.entries()].sort((a, b) => b[1] - a[1]);
    for (const [topic, n] of ranked) {
      allTopics.add(topic);
      total += n;
    }
    const [topic, n] = ranked[0] ?? [];
    if (topic === undefined) continue;
    inMajority += n;
    owner.set(topic, [...(owner.get(topic) ?? []), cluster]);
  }
  const orphans = [...allTopics].filter((topic) => !owner.has(topic));
  const split = [...owner.entries()].filter(([, clusters]) => clusters.length > 1);
  const elsewhere = total - inMajority;
  const purity = total === 0 ? 0 : (100 * inMajority) / total;
  if (orphans.length === 0 && split.length === 0) {
    return { separated: true, line: `✅ all ${allTopics.size} topics separated: each is the majority of its own cluster (purity ${purity.toFixed(1)} %, ${elsewhere} of ${total} texts elsewhere)` };
  }
  const problems = [
    ...orphans.map((topic) => `${topic} leads no cluster`),
    ...split.map(([topic, clusters]) => `${topic} leads clusters ${clusters.join(" and ")}`),
  ];
  return { separated: false, line: `❌ topics not separated: ${problems.join("; ")} (purity ${purity.toFixed(1)} %)` };
}

// Run only as a script: test/node/readme.test.ts imports topicSeparation.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main().catch((error) => {
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

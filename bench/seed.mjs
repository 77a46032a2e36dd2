// Seed SQL for the list and purge benchmarks: namespaces, an API key each, and N task records
// generated inside SQLite by a recursive CTE (no multi-GB SQL file).
import { createHash } from "node:crypto";

const STATUSES = ["created", "queued", "processing", "completed", "failed", "cancelled"];

export function seedNamespace({ namespaceId, name, apiKey }) {
  const now = new Date().toISOString();
  const hash = createHash("sha256").update(apiKey).digest("hex");
  return [
    `INSERT INTO namespaces (namespace_id, namespace_name, settings, created_at, updated_at) VALUES ('${namespaceId}', '${name}', '{}', '${now}', '${now}');`,
    `INSERT INTO api_keys (key_id, namespace_id, name, key_hash, created_at) VALUES ('key_${name.replace(/[^a-z0-9]/g, "")}', '${namespaceId}', 'bench', '${hash}', '${now}');`,
  ].join("\n");
}

/**
 * `count` records, one in six of each status; terminal ones expire at `expiresAt` (ms). Every
 * record is a complete task object, as the service itself writes it.
 */
export function seedRecords({ namespaceId, count, expiresAt, idPrefix }) {
  const status = `CASE x % 6 ${STATUSES.map((s, i) => `WHEN ${i} THEN '${s}'`).join(" ")} END`;
  const terminal = "x % 6 >= 3";
  const ts = "strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + x, 'unixepoch')";
  const id = `'tsk_${idPrefix}' || printf('%016d', x)`;
  const record = `json_object(
      'task_id', ${id}, 'namespace_id', '${namespaceId}', 'task_type', 'bench_' || (x % 4), 'status', ${status},
      'inputs', json_object('object', 'bucket/key-' || x), 'outputs', CASE WHEN x % 6 = 3 THEN json_object('vectors', x % 100) ELSE NULL END,
      'progress', json_object('percent', NULL, 'message', NULL, 'processed', NULL, 'total', NULL),
      'error', CASE WHEN x % 6 = 4 THEN json_object('code', 'timeout', 'message', 'too slow', 'retryable', json('false')) ELSE NULL END,
      'attempt', 1, 'max_attempts', 3, 'priority', 5, 'parent_task_id', NULL, 'queue_position', NULL,
      'created_at', ${ts}, 'queued_at', ${ts}, 'started_at', NULL, 'completed_at', CASE WHEN ${terminal} THEN ${ts} ELSE NULL END,
      'updated_at', ${ts}, 'timeout_at', NULL,
      'expires_at', CASE WHEN ${terminal} THEN strftime('%Y-%m-%dT%H:%M:%fZ', ${expiresAt} / 1000.0, 'unixepoch') ELSE NULL END)`;
  return `INSERT INTO task_records (task_id, namespace_id, seq, task_type, status, parent_task_id, created_at, updated_at, expires_at, version, record)
    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${count})
    SELECT ${id}, '${namespaceId}', x, 'bench_' || (x % 4), ${status}, NULL, ${ts}, ${ts},
      CASE WHEN ${terminal} THEN ${expiresAt} ELSE NULL END, 1, ${record}
    FROM c;`;
}

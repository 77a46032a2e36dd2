import { deliveryUpserts } from "../db/deliveries";
import { logInserts } from "../db/logs";
import { type RecordColumns, recordUpserts } from "../db/records";
import { stagingRemovalsFor } from "../db/staging";
import type { LogPayload, MirroredDelivery } from "../db/types";
import { isTerminal, type Task, type TaskStatus } from "../tasks/model";
import { iso } from "../time";
import { evictFlushed } from "./evict";
import type { Sql } from "./sql";
import type { TaskRow } from "./task-row";
import { taskJson } from "./task-view";
import { yieldTurn } from "./turn";

/**
 * Rows one round writes to D1 at most, of each kind. Locally (Miniflare) D1 runs on the
 * object's own thread, so a batch holds the object for its whole write: a few milliseconds for
 * a round of this size (one upsert statement of records and one of lines, see db/records.ts and
 * db/logs.ts). In production the object is free meanwhile.
 */
export const LOG_BATCH = 200;
export const RECORD_BATCH = 100;
export const DELIVERY_BATCH = 100;
/** D1 takes at most a few MB a batch; records can reach 1 MiB of outputs each. */
const RECORD_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Terminal tasks evicted (with their outbox rows cleared) in one transaction: each eviction
 * deletes a task row and its index entries, so a chunk stays within a few milliseconds and the
 * object serves other requests between chunks.
 */
export const EVICT_CHUNK = 25;

/** What a flush needs of its Durable Object. */
export interface OutboxHost {
  sql: Sql;
  db: D1Database;
  namespaceId: string;
  /** How long a terminal task's record stays in D1 (its expires_at). */
  recordRetentionMs: number;
  d1Batch(statements: D1PreparedStatement[]): Promise<unknown>;
  transaction<T>(fn: () => T): T;
}

/** A record the outbox owes D1, with the task's row as it stands (null if the row is gone). */
type PendingRow = { pending_id: string; pending_version: number; pending_position: number | null } & (TaskRow | { [K in keyof TaskRow]: null });

/** A record built for D1, and the outbox mark (task id, version) that it clears. */
type Built = RecordColumns & { pending_version: number };

/**
 * Writes one round of pending log lines, task records and delivery records to D1 with
 * idempotent statements: log lines by (task_id, seq), records by version. Rows leave the outbox
 * only after D1 took them, so a failure loses nothing and a replay changes nothing. Returns
 * whether rows are left for another round.
 *
 * The rows D1 took leave in chunks, each its own transaction with a turn of the event loop
 * before the next: a restart between chunks leaves the rest in the outbox for the next round,
 * which writes them again (no change) and clears them then.
 */
export async function flushOutbox(host: OutboxHost): Promise<boolean> {
  const logs = host.sql.all<{ id: number; task_id: string; payload: string }>(
    "SELECT id, task_id, payload FROM outbox ORDER BY id LIMIT ?",
    LOG_BATCH,
  );
  const { records, orphans } = pendingRecords(host, RECORD_BATCH, RECORD_BATCH_BYTES);
  const deliveries = host.sql.all<{ delivery_id: string; version: number; payload: string }>(
    "SELECT delivery_id, version, payload FROM delivery_outbox LIMIT ?",
    DELIVERY_BATCH,
  );
  if (logs.length === 0 && records.length === 0 && orphans.length === 0 && deliveries.length === 0) return false;

  const lines = logs.map((r) => ({ task_id: r.task_id, line: JSON.parse(r.payload) as LogPayload }));
  const statements = [
    ...recordUpserts(host.db, host.namespaceId, records),
    ...logInserts(host.db, host.namespaceId, lines),
    ...deliveryUpserts(host.db, host.namespaceId, deliveries.map((d) => ({ version: d.version, mirrored: JSON.parse(d.payload) as MirroredDelivery }))),
    // In the batch that records a batch import as finished: its staging goes with it.
    ...stagingRemovalsFor(host.db, host.namespaceId, records.filter((r) => r.task_type === "batch_import").map((r) => JSON.parse(r.json) as Task)),
  ];
  // A round of only orphaned marks has nothing for D1, which refuses an empty batch.
  if (statements.length > 0) await host.d1Batch(statements);

  // Each chunk after a turn, the first too: locally D1 writes on the object's own thread, so
  // its answer comes at the end of a hold of its own. A chunk ends at its EVICT_CHUNK-th
  // eviction; clearing a mark that evicts nothing costs little, so those share a chunk.
  for (const [index, chunk] of evictionChunks(records).entries()) {
    await yieldTurn();
    host.transaction(() => {
      if (index === 0) {
        const lastLog = logs[logs.length - 1];
        if (lastLog) host.sql.run("DELETE FROM outbox WHERE id <= ?", lastLog.id);
        if (deliveries.length > 0) {
          host.sql.run(
            "DELETE FROM delivery_outbox WHERE (delivery_id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            JSON.stringify(deliveries.map((d) => [d.delivery_id, d.version])),
          );
        }
        if (orphans.length > 0) clearMarks(host.sql, orphans);
      }
      if (chunk.length > 0) clearMarks(host.sql, chunk.map((r) => [r.task_id, r.pending_version]));
      // The terminal tasks whose final record is now safe in D1 leave, in the same transaction.
      evictFlushed(host.sql, chunk.filter((r) => isTerminal(r.status)).map((r) => [r.task_id, r.version]));
    });
  }
  return (
    host.sql.count(
      "SELECT (EXISTS (SELECT 1 FROM outbox) OR EXISTS (SELECT 1 FROM record_outbox) OR EXISTS (SELECT 1 FROM delivery_outbox)) AS n",
    ) > 0
  );
}

/**
 * Up to `limit` records the outbox owes, built from the tasks' rows, within `maxBytes` of task
 * JSON (at least one). Each carries the row's version: the mark's is the same, as every change
 * of a row that a record shows marks it in the same transaction. A mark whose row is gone
 * (which eviction never leaves: it takes a row only at the version flushed) has nothing to
 * build and is only cleared, so that it cannot hold the outbox forever.
 */
function pendingRecords(host: OutboxHost, limit: number, maxBytes: number): { records: Built[]; orphans: [string, number][] } {
  const records: Built[] = [];
  const orphans: [string, number][] = [];
  let bytes = 0;
  const rows = host.sql.all<PendingRow>(
    `SELECT r.task_id AS pending_id, r.version AS pending_version, r.queue_position AS pending_position, t.*
       FROM record_outbox r LEFT JOIN tasks t ON t.task_id = r.task_id LIMIT ?`,
    limit,
  );
  for (const row of rows) {
    if (row.task_id === null) {
      console.error(`record of task ${row.pending_id} owed to D1 but its row is gone; dropped`);
      orphans.push([row.pending_id, row.pending_version]);
      continue;
    }
    const position = row.status === "created" ? row.pending_position : null;
    const json = taskJson(row, host.namespaceId, host.recordRetentionMs, { queue_position: position, waiting: null });
    if (records.length > 0 && bytes + json.length > maxBytes) break;
    bytes += json.length;
    records.push({
      task_id: row.task_id,
      seq: row.seq,
      task_type: row.task_type,
      status: row.status,
      parent_task_id: row.parent_task_id,
      created_at: iso(row.created_at) ?? "",
      updated_at: iso(row.updated_at) ?? "",
      expires_at: row.completed_at === null ? null : row.completed_at + host.recordRetentionMs,
      version: row.version,
      json,
      pending_version: row.pending_version,
    });
  }
  return { records, orphans };
}

/** Clears the outbox marks of these (task id, version) pairs; a newer mark of a task stays. */
function clearMarks(sql: Sql, marks: [string, number][]): void {
  // One statement (through the primary key, a search per pair), guarded by version: a newer
  // change marked while D1 was busy stays for the next round.
  sql.run("DELETE FROM record_outbox WHERE (task_id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))", JSON.stringify(marks));
}

/** The flushed records in runs of at most EVICT_CHUNK terminal ones (each may evict its task); at least one run. */
function evictionChunks<R extends { status: TaskStatus }>(records: R[]): R[][] {
  const chunks: R[][] = [[]];
  let evictions = 0;
  for (const r of records) {
    const terminal = isTerminal(r.status);
    if (terminal && evictions === EVICT_CHUNK) {
      chunks.push([]);
      evictions = 0;
    }
    chunks[chunks.length - 1]!.push(r);
    if (terminal) evictions++;
  }
  return chunks;
}

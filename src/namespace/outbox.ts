import { deliveryUpserts } from "../db/deliveries";
import { logInserts } from "../db/logs";
import { recordUpserts } from "../db/records";
import { stagingRemovalsFor } from "../db/staging";
import type { LogPayload, MirroredDelivery, MirroredRecord } from "../db/types";
import { isTerminal } from "../tasks/model";
import { taskJsonOf } from "./task-view";
import type { Sql } from "./sql";
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
/** D1 takes at most a few MB a batch; record snapshots can reach 1 MiB of outputs each. */
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
  d1Batch(statements: D1PreparedStatement[]): Promise<unknown>;
  transaction<T>(fn: () => T): T;
  /** Called, inside the transaction that clears the outbox row, for a terminal record safe in D1. */
  onTerminalFlushed(taskId: string, version: number, status: string): void;
}

type RecordRow = { task_id: string; version: number; payload: string };

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
  const records: RecordRow[] = [];
  let bytes = 0;
  for (const row of host.sql.all<RecordRow>("SELECT task_id, version, payload FROM record_outbox LIMIT ?", RECORD_BATCH)) {
    if (records.length > 0 && bytes + row.payload.length > RECORD_BATCH_BYTES) break;
    records.push(row);
    bytes += row.payload.length;
  }
  const deliveries = host.sql.all<{ delivery_id: string; version: number; payload: string }>(
    "SELECT delivery_id, version, payload FROM delivery_outbox LIMIT ?",
    DELIVERY_BATCH,
  );
  if (logs.length === 0 && records.length === 0 && deliveries.length === 0) return false;

  const parsed = records.map((r) => ({ ...r, record: JSON.parse(r.payload) as MirroredRecord, taskJson: taskJsonOf(r.payload) }));
  const lines = logs.map((r) => ({ task_id: r.task_id, line: JSON.parse(r.payload) as LogPayload }));
  const statements = [
    ...recordUpserts(host.db, host.namespaceId, parsed),
    ...logInserts(host.db, host.namespaceId, lines),
    ...deliveryUpserts(host.db, host.namespaceId, deliveries.map((d) => ({ version: d.version, mirrored: JSON.parse(d.payload) as MirroredDelivery }))),
    // In the batch that records a batch import as finished: its staging goes with it.
    ...stagingRemovalsFor(host.db, host.namespaceId, parsed.map((r) => r.record.task)),
  ];
  await host.d1Batch(statements);

  // Each chunk after a turn, the first too: locally D1 writes on the object's own thread, so
  // its answer comes at the end of a hold of its own. A chunk ends at its EVICT_CHUNK-th
  // eviction; clearing a snapshot that evicts nothing costs little, so those share a chunk.
  for (const [index, chunk] of evictionChunks(parsed).entries()) {
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
      }
      // One statement for the chunk (through the primary key, a search per pair), guarded by
      // version: a newer snapshot written while D1 was busy stays for the next round.
      if (chunk.length > 0) {
        host.sql.run(
          "DELETE FROM record_outbox WHERE (task_id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
          JSON.stringify(chunk.map((r) => [r.task_id, r.version])),
        );
      }
      for (const r of chunk) {
        if (isTerminal(r.record.task.status)) host.onTerminalFlushed(r.task_id, r.version, r.record.task.status);
      }
    });
  }
  return (
    host.sql.count(
      "SELECT (EXISTS (SELECT 1 FROM outbox) OR EXISTS (SELECT 1 FROM record_outbox) OR EXISTS (SELECT 1 FROM delivery_outbox)) AS n",
    ) > 0
  );
}

/** The flushed records in runs of at most EVICT_CHUNK terminal ones (each may evict its task); at least one run. */
function evictionChunks<R extends { record: MirroredRecord }>(records: R[]): R[][] {
  const chunks: R[][] = [[]];
  let evictions = 0;
  for (const r of records) {
    const terminal = isTerminal(r.record.task.status);
    if (terminal && evictions === EVICT_CHUNK) {
      chunks.push([]);
      evictions = 0;
    }
    chunks[chunks.length - 1]!.push(r);
    if (terminal) evictions++;
  }
  return chunks;
}

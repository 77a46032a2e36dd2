import { z } from "@hono/zod-openapi";
import { isTerminal, jsonBytes, type Task } from "../tasks/model";
import { NewObject, type NewObjectInput } from "./objects";

/**
 * A batch import's staged payload (SPEC §8). It belongs to one namespace and one task: every
 * read names both, so a staging id copied from one namespace's task inputs reaches nothing in
 * another, and it is removed when its task ends, whatever its status.
 */

/** Staged chunks stay well under D1's 2 MB row limit. */
const STAGING_CHUNK_BYTES = 900 * 1024;

/** The statements that stage `objects` under `stagingId` for `namespaceId`, still without a task. */
export function stagingInserts(db: D1Database, namespaceId: string, stagingId: string, objects: NewObjectInput[], now = Date.now()): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  let chunk: NewObjectInput[] = [];
  let bytes = 0;
  let first = 0;
  const flush = () => {
    statements.push(
      db
        .prepare("INSERT INTO batch_staging (namespace_id, task_id, staging_id, chunk, first_index, payload, created_ms) VALUES (?, NULL, ?, ?, ?, ?, ?)")
        .bind(namespaceId, stagingId, statements.length, first, JSON.stringify(chunk), now),
    );
    first += chunk.length;
    chunk = [];
    bytes = 0;
  };
  for (const object of objects) {
    const size = jsonBytes(object);
    if (chunk.length > 0 && bytes + size > STAGING_CHUNK_BYTES) flush();
    chunk.push(object);
    bytes += size;
  }
  if (chunk.length > 0) flush();
  return statements;
}

/**
 * Gives staged rows that have no task yet to `taskId`. Both the creating request (once the task
 * exists) and the task's first run call this, so a request that dies in between loses nothing;
 * rows already bound to another task are left alone.
 */
export async function bindStaging(db: D1Database, namespaceId: string, stagingId: string, taskId: string): Promise<void> {
  await db
    .prepare("UPDATE batch_staging SET task_id = ? WHERE namespace_id = ? AND staging_id = ? AND task_id IS NULL")
    .bind(taskId, namespaceId, stagingId)
    .run();
}

/** Removes staging of a namespace that no task was created for (the creating request failed). */
export async function dropUnboundStaging(db: D1Database, namespaceId: string, stagingId: string): Promise<void> {
  await db.prepare("DELETE FROM batch_staging WHERE namespace_id = ? AND staging_id = ? AND task_id IS NULL").bind(namespaceId, stagingId).run();
}

export interface StagedChunk {
  firstIndex: number;
  objects: NewObjectInput[];
}

/** Thrown when a stored chunk does not parse: nothing a retry could mend. */
export class StagingCorrupt extends Error {}

/** The chunk of a task's staging holding object `index` or the last before it; null if none. */
export async function stagedChunk(db: D1Database, owner: { namespaceId: string; taskId: string; stagingId: string }, index: number): Promise<StagedChunk | null> {
  const row = await db
    .prepare(
      `SELECT first_index, payload FROM batch_staging WHERE namespace_id = ? AND staging_id = ? AND task_id = ? AND first_index <= ?
       ORDER BY first_index DESC LIMIT 1`,
    )
    .bind(owner.namespaceId, owner.stagingId, owner.taskId, index)
    .first<{ first_index: number; payload: string }>();
  if (!row) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(row.payload);
  } catch {
    throw new StagingCorrupt("a staged chunk is not JSON");
  }
  const objects = z.array(NewObject).safeParse(payload);
  if (!objects.success) throw new StagingCorrupt("a staged chunk does not hold objects");
  return { firstIndex: row.first_index, objects: objects.data };
}

/** Removes a task's staging, and any of its staging id still waiting to be bound. */
export function stagingRemoval(db: D1Database, namespaceId: string, taskId: string, stagingId: string): D1PreparedStatement {
  return db
    .prepare("DELETE FROM batch_staging WHERE namespace_id = ? AND staging_id = ? AND (task_id = ? OR task_id IS NULL)")
    .bind(namespaceId, stagingId, taskId);
}

/**
 * The removals of the staging of every finished batch import among `tasks`: the outbox flush
 * adds them to the D1 batch that records those tasks as finished, so staging never outlives
 * its import, however the import ended (a cancelled one ends with no handler running).
 */
export function stagingRemovalsFor(db: D1Database, namespaceId: string, tasks: Task[]): D1PreparedStatement[] {
  return tasks.flatMap((task) => {
    const stagingId = task.task_type === "batch_import" && isTerminal(task.status) ? task.inputs.staging_id : undefined;
    return typeof stagingId === "string" ? [stagingRemoval(db, namespaceId, task.task_id, stagingId)] : [];
  });
}

/**
 * The cron's backstop: removes up to `limit` staged rows whose task has finished (its record in
 * D1 says so) or that are older than `cutoffMs` (the record retention: no import waits that
 * long, and a request that died before creating its task leaves rows nothing else removes).
 * Two statements a run; says how many rows went, and whether rows may be left for another run.
 */
export async function purgeStaging(db: D1Database, cutoffMs: number, limit: number): Promise<{ removed: number; complete: boolean }> {
  const [finished, old] = await db.batch([
    db
      .prepare(
        `DELETE FROM batch_staging WHERE rowid IN
           (SELECT s.rowid FROM batch_staging s JOIN task_records r ON r.task_id = s.task_id AND r.namespace_id = s.namespace_id
            WHERE r.status IN ('completed', 'failed', 'cancelled') LIMIT ?)`,
      )
      .bind(limit),
    db.prepare("DELETE FROM batch_staging WHERE rowid IN (SELECT rowid FROM batch_staging WHERE created_ms <= ? LIMIT ?)").bind(cutoffMs, limit),
  ]);
  const ofFinished = finished?.meta.changes ?? 0;
  const ofOld = old?.meta.changes ?? 0;
  return { removed: ofFinished + ofOld, complete: ofFinished < limit && ofOld < limit };
}

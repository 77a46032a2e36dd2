import type { Sql } from "./sql";

/** A multi-row statement's JSON parameter stays well under SQLite's largest value. */
const CHUNK_BYTES = 512 * 1024;

type EventRow = [eventId: string, type: string, taskId: string | null, at: number, data: string];
type LogRow = [taskId: string, payload: string];
type RecordRow = [taskId: string, version: number, payload: string];

/** Writes one event row now. */
export function insertEvent(sql: Sql, ...row: EventRow): void {
  sql.run("INSERT INTO events (event_id, event_type, task_id, created_at, data) VALUES (?, ?, ?, ?, ?)", ...row);
}

/** Puts one log line in the outbox now. */
export function insertLog(sql: Sql, ...row: LogRow): void {
  sql.run("INSERT INTO outbox (kind, task_id, payload) VALUES ('log', ?, ?)", ...row);
}

/** Puts a task's snapshot in the record outbox now, replacing an older one not yet flushed. */
export function upsertRecord(sql: Sql, ...row: RecordRow): void {
  sql.run(
    `INSERT INTO record_outbox (task_id, version, payload) VALUES (?, ?, ?)
     ON CONFLICT (task_id) DO UPDATE SET version = excluded.version, payload = excluded.payload`,
    ...row,
  );
}

/**
 * The event, log-line and record-snapshot rows of one bulk step (TaskStore.bulk), written at
 * its end in a few multi-row statements (the rows as one JSON parameter, expanded by
 * json_each) instead of three statements a change. Nothing in a step reads these tables back:
 * streams, deliveries and the outbox flush read them after it. `mark` and `rollback` let a step
 * drop what one of its own transactions wrote when that transaction rolled back.
 */
export class DeferredWrites {
  private events: EventRow[] = [];
  private logs: LogRow[] = [];
  private records: RecordRow[] = [];

  event(eventId: string, type: string, taskId: string | null, at: number, data: string): void {
    this.events.push([eventId, type, taskId, at, data]);
  }

  log(taskId: string, payload: string): void {
    this.logs.push([taskId, payload]);
  }

  /** A task's latest snapshot for D1; a later one of the same task replaces it. */
  record(taskId: string, version: number, payload: string): void {
    this.records.push([taskId, version, payload]);
  }

  mark(): [number, number, number] {
    return [this.events.length, this.logs.length, this.records.length];
  }

  rollback([events, logs, records]: [number, number, number]): void {
    this.events.length = events;
    this.logs.length = logs;
    this.records.length = records;
  }

  /** Writes every row, in the order the step made them. */
  write(sql: Sql): void {
    // A step of one change (a single create) writes its rows as plain inserts: expanding one row
    // from JSON costs more than binding it.
    if (this.events.length <= 1 && this.logs.length <= 1 && this.records.length <= 1) {
      for (const e of this.events) insertEvent(sql, ...e);
      for (const l of this.logs) insertLog(sql, ...l);
      for (const r of this.records) upsertRecord(sql, ...r);
      this.rollback([0, 0, 0]);
      return;
    }
    for (const chunk of chunks(this.events, (e) => e[4].length)) {
      sql.run(
        `INSERT INTO events (event_id, event_type, task_id, created_at, data)
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?) ORDER BY key`,
        JSON.stringify(chunk),
      );
    }
    for (const chunk of chunks(this.logs, (l) => l[1].length)) {
      sql.run("INSERT INTO outbox (kind, task_id, payload) SELECT 'log', value ->> 0, value ->> 1 FROM json_each(?) ORDER BY key", JSON.stringify(chunk));
    }
    // Only the last snapshot of each task matters.
    const latest = [...new Map(this.records.map((r) => [r[0], r])).values()];
    for (const chunk of chunks(latest, (r) => r[2].length)) {
      sql.run(
        `INSERT INTO record_outbox (task_id, version, payload)
         SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
         ON CONFLICT (task_id) DO UPDATE SET version = excluded.version, payload = excluded.payload`,
        JSON.stringify(chunk),
      );
    }
    this.rollback([0, 0, 0]);
  }
}

/** Splits rows into runs of about CHUNK_BYTES (a row larger than that goes alone). */
function* chunks<T>(rows: T[], size: (row: T) => number): Generator<T[]> {
  let chunk: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    if (chunk.length > 0 && bytes + size(row) > CHUNK_BYTES) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(row);
    bytes += size(row);
  }
  if (chunk.length > 0) yield chunk;
}

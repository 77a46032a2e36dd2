import type { Sql } from "./sql";

type EventRow = [eventId: string, type: string, taskId: string | null, at: number, data: string];
type LogRow = [taskId: string, payload: string];
type RecordRow = [taskId: string, version: number, queuePosition: number | null];

/** Writes one event row now. */
export function insertEvent(sql: Sql, ...row: EventRow): void {
  sql.run("INSERT INTO events (event_id, event_type, task_id, created_at, data) VALUES (?, ?, ?, ?, ?)", ...row);
}

/** Puts one log line in the outbox now. */
export function insertLog(sql: Sql, ...row: LogRow): void {
  sql.run("INSERT INTO outbox (kind, task_id, payload) VALUES ('log', ?, ?)", ...row);
}

/**
 * Marks a task's record as owed to D1 at `version` now (the flush builds it from the task's row),
 * replacing an older mark not yet flushed.
 */
export function upsertRecord(sql: Sql, ...row: RecordRow): void {
  sql.run(`INSERT INTO record_outbox (task_id, version, queue_position) VALUES (?, ?, ?) ${RECORD_CONFLICT}`, ...row);
}

const RECORD_CONFLICT = "ON CONFLICT (task_id) DO UPDATE SET version = excluded.version, queue_position = excluded.queue_position";

/**
 * The event, log-line and record-mark rows of one bulk step (TaskStore.bulk), written at
 * its end in a few multi-row statements instead of three statements a change. Nothing in a
 * step reads these tables back: streams, deliveries and the outbox flush read them after it. `mark` and `rollback` let a step
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

  /** A task's record is owed at `version`; a later mark of the same task replaces it. */
  record(taskId: string, version: number, queuePosition: number | null): void {
    this.records.push([taskId, version, queuePosition]);
  }

  mark(): [number, number, number] {
    return [this.events.length, this.logs.length, this.records.length];
  }

  rollback([events, logs, records]: [number, number, number]): void {
    this.events.length = events;
    this.logs.length = logs;
    this.records.length = records;
  }

  /**
   * Writes every row, in the order the step made them: as many rows a statement as the
   * object's 100 bound parameters allow, bound column by column (parsing rows out of one JSON
   * parameter costs SQLite more than binding them); the rest in one shorter statement.
   */
  write(sql: Sql): void {
    insertMany(sql, this.events, EVENT_INSERT);
    insertMany(sql, this.logs, LOG_INSERT);
    // Only the last mark of each task matters.
    const latest = this.records.length <= 1 ? this.records : [...new Map(this.records.map((r) => [r[0], r])).values()];
    insertMany(sql, latest, RECORD_UPSERT);
    this.rollback([0, 0, 0]);
  }
}

/**
 * A multi-row statement: `sql(n)` is its text for n rows. A full one has `rows` rows (within
 * 100 parameters); the texts of every size are made once and kept, so the object's cache of
 * prepared statements sees the same few texts.
 */
class ManyRows {
  private readonly texts: string[] = [];

  constructor(
    readonly rows: number,
    private readonly text: (n: number) => string,
  ) {}

  sql(n: number): string {
    return (this.texts[n] ??= this.text(n));
  }
}

const tuples = (rows: number, columns: number): string =>
  Array.from({ length: rows }, () => `(${Array.from({ length: columns }, () => "?").join(", ")})`).join(", ");

const EVENT_INSERT = new ManyRows(20, (n) => `INSERT INTO events (event_id, event_type, task_id, created_at, data) VALUES ${tuples(n, 5)}`);
const LOG_INSERT = new ManyRows(50, (n) => `INSERT INTO outbox (kind, task_id, payload) VALUES ${Array(n).fill("('log', ?, ?)").join(", ")}`);
const RECORD_UPSERT = new ManyRows(33, (n) => `INSERT INTO record_outbox (task_id, version, queue_position) VALUES ${tuples(n, 3)} ${RECORD_CONFLICT}`);

/**
 * Full statements of `many.rows` rows, then the rest in one statement: a step's rows, however
 * few, cost one statement a kind (a create's two events, its two lines).
 */
function insertMany(sql: Sql, rows: SqlStorageValue[][], many: ManyRows): void {
  for (let i = 0; i < rows.length; i += many.rows) {
    const chunk = rows.slice(i, i + many.rows);
    sql.run(many.sql(chunk.length), ...chunk.flat());
  }
}

import { jsonChunks } from "./json-rows";
import { type Task, TaskSchema, type TaskStatus } from "../tasks/model";
import { afterClause, orderClause, type Page, type Position, toPage } from "./keyset";

/** D1 binds at most 100 parameters a statement; a record bound column by column takes 11. */
const RECORDS_PER_STATEMENT = 9;
/**
 * Records go several to a statement as one JSON parameter (expanded by json_each) up to this
 * many characters of record text: well under D1's largest value (2 MB) even once escaped. A
 * record larger than that (outputs reach 1 MiB) is bound column by column instead.
 */
const JSON_CHUNK_CHARS = 256 * 1024;

const UPSERT_COLUMNS = "task_id, namespace_id, seq, task_type, status, parent_task_id, created_at, updated_at, expires_at, version, record";
/** Never replaces a higher version, so a replayed or out-of-order flush cannot move a record back. */
const ON_CONFLICT = `ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at,
  expires_at = excluded.expires_at, version = excluded.version, record = excluded.record
  WHERE excluded.version > task_records.version`;

/** One task version for D1: the columns task_records is searched by, and the task's JSON text (`json`). */
export interface RecordColumns {
  task_id: string;
  seq: number;
  task_type: string;
  status: TaskStatus;
  parent_task_id: string | null;
  /** ISO times, as the task's JSON has them. */
  created_at: string;
  updated_at: string;
  /** When the record may be purged (ms), once the task is terminal. */
  expires_at: number | null;
  version: number;
  json: string;
}

/**
 * The upserts that mirror task versions into D1: one statement for many records (the rows as
 * one JSON parameter), so a flush round costs D1 a statement or two rather than one per nine
 * records; each row is only written if its version is higher than D1's.
 */
export function recordUpserts(db: D1Database, namespaceId: string, rows: RecordColumns[]): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  // A record over the bound goes with its columns bound: inside JSON its text would be escaped again.
  const small = rows.filter((r) => r.json.length <= JSON_CHUNK_CHARS);
  for (const chunk of jsonChunks(small, (r) => r.json.length, JSON_CHUNK_CHARS)) {
    statements.push(
      db
        .prepare(
          `INSERT INTO task_records (${UPSERT_COLUMNS})
           SELECT value ->> 0, ?, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7,
             value ->> 8, value ->> 9
           FROM json_each(?) WHERE true
           ${ON_CONFLICT}`,
        )
        .bind(
          namespaceId,
          JSON.stringify(chunk.map((r) => [r.task_id, r.seq, r.task_type, r.status, r.parent_task_id, r.created_at, r.updated_at, r.expires_at, r.version, r.json])),
        ),
    );
  }
  return [...statements, ...boundUpserts(db, namespaceId, rows.filter((r) => r.json.length > JSON_CHUNK_CHARS))];
}

/** Upserts with every column bound, several rows a statement (within D1's 100 parameters). */
function boundUpserts(db: D1Database, namespaceId: string, rows: RecordColumns[]): D1PreparedStatement[] {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += RECORDS_PER_STATEMENT) {
    const chunk = rows.slice(i, i + RECORDS_PER_STATEMENT);
    const values = chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", ");
    const params = chunk.flatMap((r) => [r.task_id, namespaceId, r.seq, r.task_type, r.status, r.parent_task_id, r.created_at, r.updated_at,
      r.expires_at, r.version, r.json]);
    statements.push(db.prepare(`INSERT INTO task_records (${UPSERT_COLUMNS}) VALUES ${values} ${ON_CONFLICT}`).bind(...params));
  }
  return statements;
}

/** A retained record parsed back into a task; the JSON was written by this service. */
export function parseRecord(text: string): Task {
  return TaskSchema.parse(JSON.parse(text)) as Task;
}

/** A task's retained record, or null once it is gone or past its expiry. */
export async function getRecord(db: D1Database, namespaceId: string, taskId: string, now = Date.now()): Promise<Task | null> {
  const row = await db
    .prepare("SELECT record, expires_at FROM task_records WHERE task_id = ? AND namespace_id = ?")
    .bind(taskId, namespaceId)
    .first<{ record: string; expires_at: number | null }>();
  if (!row || (row.expires_at !== null && row.expires_at <= now)) return null;
  return parseRecord(row.record);
}

export type SortField = "created_at" | "updated_at";

/** What a query of retained records may select on, besides the namespace (always) and the expiry. */
export interface RecordFilter {
  statuses?: readonly string[];
  taskTypes?: readonly string[];
  parentTaskId?: string;
  createdAfter?: string;
  createdBefore?: string;
  /** The `error.code` of a failed task. */
  errorCode?: string;
}

/**
 * The WHERE conditions of a records query, with their parameters in order: the namespace, the
 * records not yet expired at `now`, and each filter given. Every query of task_records builds its
 * conditions here, so a filter means the same in every list.
 */
export function recordConditions(namespaceId: string, f: RecordFilter, now: number): { where: string[]; params: (string | number)[] } {
  const where = ["namespace_id = ?", "(expires_at IS NULL OR expires_at > ?)"];
  const params: (string | number)[] = [namespaceId, now];
  const anyOf = (column: string, values: readonly string[] | undefined) => {
    if (!values || values.length === 0) return;
    where.push(`${column} IN (${values.map(() => "?").join(", ")})`);
    params.push(...values);
  };
  anyOf("status", f.statuses);
  anyOf("task_type", f.taskTypes);
  const add = (sql: string, value: string | undefined) => {
    if (value === undefined) return;
    where.push(sql);
    params.push(value);
  };
  add("parent_task_id = ?", f.parentTaskId);
  add("created_at > ?", f.createdAfter);
  add("created_at < ?", f.createdBefore);
  add("json_extract(record, '$.error.code') = ?", f.errorCode);
  return { where, params };
}

export interface RecordQuery {
  statuses?: TaskStatus[];
  taskTypes?: string[];
  parentTaskId?: string;
  createdAfter?: string;
  createdBefore?: string;
  sort: { field: SortField; direction: "asc" | "desc" };
  limit: number;
  /** Where the page starts: after (seq) by creation, after (updated_at, task_id) by update. */
  after?: Position;
  includeTotal: boolean;
}

interface ListedRow {
  task_id: string;
  seq: number;
  updated_at: string;
  record: string;
}

/**
 * One page of a namespace's records. A multi-valued filter runs one index range per value and
 * merges them, so every query reads at most `limit + 1` rows from an index: a page costs the
 * same at a thousand records as at a million.
 */
export async function listRecords(db: D1Database, namespaceId: string, q: RecordQuery, now = Date.now()): Promise<Page<Task>> {
  const bySeq = q.sort.field === "created_at";
  const desc = q.sort.direction === "desc";
  const sortColumns = bySeq ? ["seq"] : ["updated_at", "task_id"];

  // The equality prefix of each range: one per status (or task type), else the namespace alone.
  const ranges: { column: "status" | "task_type" | null; value: string | null }[] =
    q.statuses && q.statuses.length > 0
      ? q.statuses.map((value) => ({ column: "status" as const, value }))
      : bySeq && q.taskTypes && q.taskTypes.length > 0
        ? q.taskTypes.map((value) => ({ column: "task_type" as const, value }))
        : [{ column: null, value: null }];

  // The filters besides the range's own column, shared by every range.
  const common = recordConditions(
    namespaceId,
    { ...q, statuses: undefined, taskTypes: ranges[0]?.column === "task_type" ? undefined : q.taskTypes },
    now,
  );

  const keyset = q.after ? afterClause(sortColumns, q.sort.direction, q.after) : null;
  const orderBy = orderClause(sortColumns, q.sort.direction);

  const statements = ranges.map((range) => {
    const where = [...common.where, ...(range.column ? [`${range.column} = ?`] : []), ...(keyset ? [keyset.sql] : [])];
    const params = [...common.params, ...(range.value !== null ? [range.value] : []), ...(keyset?.params ?? [])];
    return db
      .prepare(`SELECT task_id, seq, updated_at, record FROM task_records WHERE ${where.join(" AND ")} ORDER BY ${orderBy} LIMIT ?`)
      .bind(...params, q.limit + 1);
  });
  const results = statements.length === 1 ? [await statements[0]!.all<ListedRow>()] : await db.batch<ListedRow>(statements);
  const rows = results.flatMap((r) => r.results);
  rows.sort((a, b) => {
    const c = bySeq ? a.seq - b.seq : a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : a.task_id < b.task_id ? -1 : a.task_id > b.task_id ? 1 : 0;
    return desc ? -c : c;
  });
  const page = toPage(rows, q.limit, (r): Position => (bySeq ? [r.seq] : [r.updated_at, r.task_id]));

  let total: number | undefined;
  if (q.includeTotal) {
    const { where, params } = recordConditions(namespaceId, q, now);
    total = (await db.prepare(`SELECT COUNT(*) AS n FROM task_records WHERE ${where.join(" AND ")}`).bind(...params).first<number>("n")) ?? 0;
  }
  return { results: page.results.map((r) => parseRecord(r.record)), next: page.next, ...(total === undefined ? {} : { total }) };
}

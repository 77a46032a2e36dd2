/**
 * Keyset pagination over SQLite (D1 and the Durable Object's storage alike): a page is the rows
 * strictly after a position in a total order, read through an index with `LIMIT n + 1`, so a
 * page costs the same at the millionth row as at the first and no list is ever read whole.
 */

import type { KeysetValue, Position } from "../cursor";

export type { KeysetValue, Position } from "../cursor";
export type SqlParam = string | number | null;

export interface PageRequest<P extends Position = Position> {
  limit: number;
  after?: P;
  includeTotal: boolean;
}

export interface Page<T, P extends Position = Position> {
  results: T[];
  /** The position of the page's last row when more rows follow, else null. */
  next: P | null;
  /** Rows matching the filter, only when the request asked for it. */
  total?: number;
}

/**
 * A list's shape: what it selects, its filter, and its order. The last sort column must make
 * the order total (an id), or rows sharing a position would be skipped between pages.
 */
export interface KeysetList<Row, P extends Position> {
  select: string;
  from: string;
  where: string[];
  params: SqlParam[];
  orderBy: readonly string[];
  direction: "asc" | "desc";
  position: (row: Row) => P;
}

/**
 * The shape of nearly every list: the rows of one table matching some columns, newest first
 * by `order` (a time column, then an id). `position` reads the same two columns from a row.
 */
export function newestFirst<Row, P extends Position>(
  table: { select: string; from: string },
  equal: Record<string, SqlParam>,
  order: readonly [string, string],
  position: (row: Row) => P,
): KeysetList<Row, P> {
  const columns = Object.keys(equal);
  return { ...table, where: columns.map((c) => `${c} = ?`), params: columns.map((c) => equal[c] ?? null), orderBy: order, direction: "desc", position };
}

/** `(a, b) < (?, ?)` (or `>` ascending): the rows strictly after a position. */
export function afterClause(columns: readonly string[], direction: "asc" | "desc", after: Position): { sql: string; params: KeysetValue[] } {
  if (after.length !== columns.length) throw new Error(`a position of ${after.length} values for ${columns.length} sort columns`);
  const cmp = direction === "desc" ? "<" : ">";
  const sql = columns.length === 1 ? `${columns[0]} ${cmp} ?` : `(${columns.join(", ")}) ${cmp} (${columns.map(() => "?").join(", ")})`;
  return { sql, params: [...after] };
}

export const orderClause = (columns: readonly string[], direction: "asc" | "desc"): string =>
  columns.map((c) => `${c} ${direction === "desc" ? "DESC" : "ASC"}`).join(", ");

/** The page query (one row more than the page, to know whether another follows) and the count under the same filter. */
export function keysetQueries<Row, P extends Position>(list: KeysetList<Row, P>, req: PageRequest<P>) {
  const after = req.after ? afterClause(list.orderBy, list.direction, req.after) : null;
  const where = [...list.where, ...(after ? [after.sql] : [])];
  const whereSql = where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "";
  const filterSql = list.where.length > 0 ? ` WHERE ${list.where.join(" AND ")}` : "";
  return {
    page: {
      sql: `SELECT ${list.select} FROM ${list.from}${whereSql} ORDER BY ${orderClause(list.orderBy, list.direction)} LIMIT ?`,
      params: [...list.params, ...(after?.params ?? []), req.limit + 1] as SqlParam[],
    },
    count: { sql: `SELECT COUNT(*) AS n FROM ${list.from}${filterSql}`, params: list.params },
  };
}

/** Cuts the `limit + 1` rows read down to a page and the position the next one starts after. */
export function toPage<Row, P extends Position>(rows: Row[], limit: number, position: (row: Row) => P): { results: Row[]; next: P | null } {
  const results = rows.slice(0, limit);
  const last = results[results.length - 1];
  return { results, next: rows.length > limit && last !== undefined ? position(last) : null };
}

/** Maps a page's rows, keeping its position and total. */
export const mapPage = <Row, T, P extends Position>(page: Page<Row, P>, map: (row: Row) => T): Page<T, P> => ({ ...page, results: page.results.map(map) });

/** One page of a D1 list; the count, when asked, runs in the same batch. */
export async function keysetPage<Row, P extends Position>(db: D1Database, list: KeysetList<Row, P>, req: PageRequest<P>): Promise<Page<Row, P>> {
  const q = keysetQueries(list, req);
  const pageStatement = db.prepare(q.page.sql).bind(...q.page.params);
  if (!req.includeTotal) return toPage((await pageStatement.all<Row>()).results, req.limit, list.position);
  const [rows, count] = await db.batch<unknown>([pageStatement, db.prepare(q.count.sql).bind(...q.count.params)]);
  const total = Number((count?.results[0] as { n: number } | undefined)?.n ?? 0);
  return { ...toPage((rows?.results ?? []) as Row[], req.limit, list.position), total };
}

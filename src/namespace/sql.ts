import { type KeysetList, keysetQueries, type Page, type PageRequest, type Position, toPage } from "../db/keyset";

export type Row = Record<string, SqlStorageValue>;

/**
 * A thin typed layer over `ctx.storage.sql.exec`: rows come back as the caller's row type and
 * a failing statement names itself in the error, so a broken query is found from the log alone.
 */
export class Sql {
  constructor(private readonly storage: SqlStorage) {}

  all<T extends Row>(query: string, ...params: SqlStorageValue[]): T[] {
    try {
      return this.storage.exec<T>(query, ...params).toArray();
    } catch (err) {
      throw queryError(err, query);
    }
  }

  one<T extends Row>(query: string, ...params: SqlStorageValue[]): T | null {
    return this.all<T>(query, ...params)[0] ?? null;
  }

  /** Runs a statement and returns how many rows it wrote. */
  run(query: string, ...params: SqlStorageValue[]): number {
    try {
      const cursor = this.storage.exec(query, ...params);
      cursor.toArray();
      return cursor.rowsWritten;
    } catch (err) {
      throw queryError(err, query);
    }
  }

  count(query: string, ...params: SqlStorageValue[]): number {
    const row = this.one<{ n: number }>(query, ...params);
    return row ? Number(row.n) : 0;
  }
}

function queryError(err: unknown, query: string): Error {
  const reason = err instanceof Error ? err.message : String(err);
  return new Error(`${reason} (in SQL: ${query.replace(/\s+/g, " ").trim().slice(0, 120)})`);
}

/** One page of a list kept in this storage, by the same keyset rules as D1's lists (db/keyset). */
export function sqlPage<R extends Row, P extends Position>(sql: Sql, list: KeysetList<R, P>, req: PageRequest<P>): Page<R, P> {
  const q = keysetQueries(list, req);
  const page = toPage(sql.all<R>(q.page.sql, ...q.page.params), req.limit, list.position);
  return req.includeTotal ? { ...page, total: sql.count(q.count.sql, ...q.count.params) } : page;
}

/**
 * A D1 database that adds up the rows its statements read and wrote (D1's meta.rows_read and
 * meta.rows_written), run alone or in a batch: a bound on them keeps a statement from walking a
 * table or writing more than it should, whatever the machine's speed.
 */
export function meteredDb(db: D1Database): { db: D1Database; rowsRead: () => number; rowsWritten: () => number } {
  let read = 0;
  let written = 0;
  const note = (meta: { rows_read?: number; rows_written?: number } | undefined) => {
    read += meta?.rows_read ?? 0;
    written += meta?.rows_written ?? 0;
  };
  const passThrough = <T extends object>(target: T, prop: string | symbol): unknown => {
    const value: unknown = Reflect.get(target, prop);
    return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
  };
  // Statements are changed in place, not proxied: the binding's batch() reads their internals.
  const wrap = (statement: D1PreparedStatement): D1PreparedStatement => {
    const methods = statement as unknown as Record<string, (...args: unknown[]) => unknown>;
    const bind = statement.bind.bind(statement);
    const run = statement.run.bind(statement);
    const all = statement.all.bind(statement);
    methods.bind = (...values: unknown[]) => wrap(bind(...values));
    methods.run = async () => {
      const result = await run();
      note(result.meta);
      return result;
    };
    methods.all = async () => {
      const result = await all();
      note(result.meta);
      return result;
    };
    return statement;
  };
  const proxy = new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql));
      if (prop === "batch") {
        return async (statements: D1PreparedStatement[]) => {
          const results = await target.batch(statements);
          for (const r of results) note(r.meta);
          return results;
        };
      }
      return passThrough(target, prop);
    },
  });
  return { db: proxy, rowsRead: () => read, rowsWritten: () => written };
}

import { DatabaseSync, type SQLInputValue } from "node:sqlite";

/**
 * Enough of a Durable Object's `ctx.storage` (its `sql.exec` and `transactionSync`) over Node's
 * SQLite for the synchronous parts of the NamespaceDO to run in a unit test, without the runtime.
 */
export function nodeStorage(): { sql: SqlStorage; transactionSync<T>(fn: () => T): T } {
  const db = new DatabaseSync(":memory:");
  const exec = (query: string, ...params: SqlStorageValue[]) => {
    // A migration is several statements without parameters: run as a script, it returns no rows.
    if (params.length === 0 && /;\s*\S/.test(query.trim().replace(/;\s*$/, ""))) {
      db.exec(query);
      return { toArray: () => [], rowsWritten: 0 };
    }
    const statement = db.prepare(query);
    const values = params as SQLInputValue[];
    if (statement.columns().length > 0) {
      const rows = statement.all(...values);
      return { toArray: () => rows, rowsWritten: 0 };
    }
    const { changes } = statement.run(...values);
    return { toArray: () => [], rowsWritten: Number(changes) };
  };
  return {
    sql: { exec } as unknown as SqlStorage,
    transactionSync<T>(fn: () => T): T {
      db.exec("SAVEPOINT tx");
      try {
        const result = fn();
        db.exec("RELEASE tx");
        return result;
      } catch (err) {
        db.exec("ROLLBACK TO tx");
        db.exec("RELEASE tx");
        throw err;
      }
    },
  };
}

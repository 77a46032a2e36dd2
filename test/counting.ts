import { createExecutionContext, createMessageBatch, getQueueResult, runInDurableObject } from "cloudflare:test";
import worker from "../src/index";
import type { NamespaceDO } from "../src/namespace/do";
import type { TaskMessage } from "../src/namespace/messages";
import { stub, type Tenant } from "./helpers";

/** Durable Object RPCs and D1 statements made through one Env. */
export interface Counts {
  doCalls: number;
  d1Statements: number;
  /** DO calls by method name. */
  byMethod: Record<string, number>;
}

const bound = <T extends object>(target: T, prop: string | symbol): unknown => {
  const value: unknown = Reflect.get(target, prop);
  return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
};

function countStatement(statement: D1PreparedStatement, counts: Counts): D1PreparedStatement {
  const methods = statement as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ["first", "all", "run", "raw"]) {
    const original = methods[name]!.bind(statement);
    methods[name] = (...args: unknown[]) => {
      counts.d1Statements++;
      return original(...args);
    };
  }
  const bind = statement.bind.bind(statement);
  methods.bind = (...values: unknown[]) => countStatement(bind(...values), counts);
  return statement;
}

/**
 * An Env whose Durable Object stubs and D1 database count what goes through them: each RPC
 * method call on a NAMESPACE stub is one DO call; each statement run alone or in a batch is one
 * D1 statement. Only the Worker's side is seen (the consumer, handlers), not the object's own
 * outbox writes to D1.
 */
export function countingEnv(base: Env): { env: Env; counts: Counts; reset(): Counts } {
  const counts: Counts = { doCalls: 0, d1Statements: 0, byMethod: {} };
  const namespace = new Proxy(base.NAMESPACE, {
    get(target, prop) {
      if (prop !== "getByName") return bound(target, prop);
      return (name: string) => {
        const real = target.getByName(name);
        return new Proxy(real, {
          get(s, method) {
            // An RPC stub answers every property with a callable; it is called through the stub.
            if (typeof method !== "string" || method === "then") return Reflect.get(s, method);
            return (...args: unknown[]) => {
              counts.doCalls++;
              counts.byMethod[method] = (counts.byMethod[method] ?? 0) + 1;
              return (s as unknown as Record<string, (...a: unknown[]) => unknown>)[method]!(...args);
            };
          },
        });
      };
    },
  });
  const db = new Proxy(base.DB, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => countStatement(target.prepare(sql), counts);
      if (prop === "batch") {
        return (statements: D1PreparedStatement[]) => {
          counts.d1Statements += statements.length;
          return target.batch(statements);
        };
      }
      return bound(target, prop);
    },
  });
  const env = new Proxy(base, {
    get(target, prop) {
      if (prop === "NAMESPACE") return namespace;
      if (prop === "DB") return db;
      return Reflect.get(target, prop);
    },
  });
  return {
    env,
    counts,
    reset() {
      const snapshot = { ...counts, byMethod: { ...counts.byMethod } };
      counts.doCalls = 0;
      counts.d1Statements = 0;
      counts.byMethod = {};
      return snapshot;
    },
  };
}

/** Swallows the namespace's queue sends, handing the messages to the test instead. */
export async function captureSends(t: Tenant): Promise<TaskMessage[]> {
  const captured: TaskMessage[] = [];
  await runInDurableObject(stub(t), (instance: NamespaceDO) => {
    instance.io.sendBatch = async (messages) => {
      captured.push(...messages.map((m) => m.body));
    };
  });
  return captured;
}

/** Hands messages to the Worker's queue consumer as one batch, with `env`. */
export async function deliver(env: Env, bodies: unknown[], queue = "tasks") {
  const batch = createMessageBatch(
    queue,
    bodies.map((body, i) => ({ id: `m${i}-${Math.random()}`, timestamp: new Date(), attempts: 1, body })),
  );
  await worker.queue(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

/**
 * Counts the SQL statements the namespace's object runs (its own SQLite), by their first words:
 * the CPU a task costs there grows with them.
 */
export async function countObjectSql(t: Tenant): Promise<{ statements: number; byQuery: Map<string, number> }> {
  const counted = { statements: 0, byQuery: new Map<string, number>() };
  await runInDurableObject(stub(t), (_instance: NamespaceDO, state) => {
    const sql = state.storage.sql;
    const exec = sql.exec.bind(sql);
    sql.exec = ((query: string, ...params: SqlStorageValue[]) => {
      counted.statements++;
      const key = query.replace(/\s+/g, " ").trim().slice(0, 60);
      counted.byQuery.set(key, (counted.byQuery.get(key) ?? 0) + 1);
      return exec(query, ...params);
    }) as typeof sql.exec;
  });
  return counted;
}

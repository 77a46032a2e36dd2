// Counters for the bench's build of the Worker (bench/counting/worker.ts): every Durable Object
// request, D1 statement and queue message the service makes, kept in module state. Under
// `wrangler dev` the Worker, its queue consumer and its Durable Objects run in one isolate, so one
// set of module counters sees them all (the bench checks it: GET /__bench/counts?probe=…).

/** What one side (the Worker, or the Durable Objects) made. */
export interface SideCounts {
  /** RPC method calls (and fetches) on NAMESPACE stubs. */
  doCalls: number;
  /** Alarm invocations of a Durable Object: requests to it too, though no stub makes them. */
  alarms: number;
  /** D1 statements, run alone or inside a batch (each is one query D1 executes). */
  d1Statements: number;
  /** D1 round trips: a statement run alone, or a whole batch. */
  d1Calls: number;
  /** Messages sent to a queue (send or sendBatch). */
  queueMessages: number;
  /** DO calls by method name. */
  byMethod: Record<string, number>;
}

export interface BenchCounts {
  worker: SideCounts;
  object: SideCounts;
}

const emptySide = (): SideCounts => ({ doCalls: 0, alarms: 0, d1Statements: 0, d1Calls: 0, queueMessages: 0, byMethod: {} });

let counts: BenchCounts = { worker: emptySide(), object: emptySide() };

let isolate: string | null = null;

/**
 * A random name for this isolate, to tell whether the objects share the Worker's counters (drawn
 * on first use: the runtime forbids random values at global scope).
 */
export const isolateId = (): string => (isolate ??= crypto.randomUUID());

export const currentCounts = (): BenchCounts => structuredClone(counts);

/** Returns the counts so far and starts again from zero. */
export function resetCounts(): BenchCounts {
  const before = counts;
  counts = { worker: emptySide(), object: emptySide() };
  return before;
}

export const countAlarm = () => {
  counts.object.alarms++;
};

type Side = keyof BenchCounts;
type Callable = (...args: unknown[]) => unknown;

const bound = <T extends object>(target: T, prop: string | symbol): unknown => {
  const value: unknown = Reflect.get(target, prop);
  return typeof value === "function" ? (value as Callable).bind(target) : value;
};

function countStatement(statement: D1PreparedStatement, side: Side): D1PreparedStatement {
  const methods = statement as unknown as Record<string, Callable>;
  for (const name of ["first", "all", "run", "raw"]) {
    const original = methods[name]!.bind(statement);
    methods[name] = (...args: unknown[]) => {
      counts[side].d1Statements++;
      counts[side].d1Calls++;
      return original(...args);
    };
  }
  const bind = statement.bind.bind(statement);
  methods.bind = (...values: unknown[]) => countStatement(bind(...values), side);
  return statement;
}

function countingDb(db: D1Database, side: Side): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => countStatement(target.prepare(sql), side);
      if (prop === "batch") {
        return (statements: D1PreparedStatement[]) => {
          counts[side].d1Statements += statements.length;
          counts[side].d1Calls++;
          return target.batch(statements);
        };
      }
      return bound(target, prop);
    },
  });
}

function countingStub(stub: object, side: Side): object {
  return new Proxy(stub, {
    get(target, method) {
      // An RPC stub answers every property with a callable; each call through it is one request.
      if (typeof method !== "string" || method === "then") return Reflect.get(target, method);
      return (...args: unknown[]) => {
        counts[side].doCalls++;
        counts[side].byMethod[method] = (counts[side].byMethod[method] ?? 0) + 1;
        return (target as Record<string, Callable>)[method]!(...args);
      };
    },
  });
}

function countingNamespace(namespace: Env["NAMESPACE"], side: Side): Env["NAMESPACE"] {
  return new Proxy(namespace, {
    get(target, prop) {
      if (prop === "getByName") return (name: string) => countingStub(target.getByName(name), side);
      if (prop === "get") return (id: DurableObjectId) => countingStub(target.get(id), side);
      return bound(target, prop);
    },
  });
}

function countingQueue<Q extends Queue>(queue: Q, side: Side): Q {
  return new Proxy(queue, {
    get(target, prop) {
      if (prop === "send") {
        return (...args: unknown[]) => {
          counts[side].queueMessages++;
          return (target.send as Callable)(...args);
        };
      }
      if (prop === "sendBatch") {
        return (messages: Iterable<unknown>, ...rest: unknown[]) => {
          const list = [...messages];
          counts[side].queueMessages += list.length;
          return (target.sendBatch as Callable)(list, ...rest);
        };
      }
      return bound(target, prop);
    },
  });
}

const wrapped = { worker: new WeakMap<Env, Env>(), object: new WeakMap<Env, Env>() };

/** `base` with NAMESPACE, DB and the queues counting into `side`'s counters (one wrapper per Env). */
export function countingEnv(base: Env, side: Side): Env {
  const known = wrapped[side].get(base);
  if (known) return known;
  const replaced: Partial<Record<keyof Env, unknown>> = {
    NAMESPACE: countingNamespace(base.NAMESPACE, side),
    DB: countingDb(base.DB, side),
    TASKS_QUEUE: countingQueue(base.TASKS_QUEUE, side),
    TASKS_DLQ: countingQueue(base.TASKS_DLQ, side),
  };
  const env = new Proxy(base, {
    get(target, prop) {
      return typeof prop === "string" && prop in replaced ? replaced[prop as keyof Env] : Reflect.get(target, prop);
    },
  });
  wrapped[side].set(base, env);
  return env;
}

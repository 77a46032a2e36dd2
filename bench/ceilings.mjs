// Counts per task and the ceilings they imply (issue 11): from what the bench's build of the
// Worker counted (bench/counting) and Cloudflare's published limits, the tasks/s one namespace,
// one queue and one D1 database can carry on each path, whatever this machine's speed.

/**
 * Cloudflare's published figures:
 * - a Durable Object is single-threaded, with a soft limit of about 1 000 requests/s
 *   (developers.cloudflare.com/durable-objects/platform/limits/);
 * - a queue carries up to 5 000 messages/s (developers.cloudflare.com/queues/platform/limits/);
 * - a D1 database is single-threaded and runs one query at a time: about 1 000 queries/s when a
 *   query takes 1 ms (developers.cloudflare.com/d1/platform/limits/, "How much work can a D1
 *   database do?"). Each statement, alone or in a batch, is one such query.
 */
export const LIMITS = { objectRequestsPerSecond: 1000, queueMessagesPerSecond: 5000, d1QueriesPerSecond: 1000 };

const emptySide = { doCalls: 0, alarms: 0, d1Statements: 0, d1Calls: 0, queueMessages: 0, byMethod: {} };

/**
 * What one task cost on a path: `counts` is GET /__bench/counts ({worker, object}) over a window
 * in which `tasks` tasks went through. Durable Object requests are the RPC calls of the Worker
 * and of the objects, plus the objects' alarms (a request no stub makes).
 */
export function perTask(counts, tasks) {
  if (!(tasks > 0)) throw new Error(`perTask needs a positive task count, got ${tasks}`);
  const worker = { ...emptySide, ...counts.worker };
  const object = { ...emptySide, ...counts.object };
  const byMethod = {};
  for (const side of [worker.byMethod, object.byMethod]) {
    for (const [method, n] of Object.entries(side)) byMethod[method] = (byMethod[method] ?? 0) + n / tasks;
  }
  if (object.alarms > 0) byMethod.alarm = object.alarms / tasks;
  return {
    tasks,
    doRequests: (worker.doCalls + object.doCalls + object.alarms) / tasks,
    d1Statements: (worker.d1Statements + object.d1Statements) / tasks,
    d1StatementsFromObject: object.d1Statements / tasks,
    d1Calls: (worker.d1Calls + object.d1Calls) / tasks,
    queueMessages: (worker.queueMessages + object.queueMessages) / tasks,
    byMethod,
  };
}

/** `limit` / `cost`, or Infinity where the path costs nothing of that resource. */
const ceilingOf = (limit, cost) => (cost > 0 ? limit / cost : Infinity);

/**
 * Tasks/s each shared resource allows on a path: one namespace (its one Durable Object), the
 * queue, the D1 database; `overall` is the least of them, the ceiling of one namespace alone.
 * The queue and the database are shared by every namespace, so their figures bound the sum.
 */
export function ceilings(cost, limits = LIMITS) {
  const namespace = ceilingOf(limits.objectRequestsPerSecond, cost.doRequests);
  const queue = ceilingOf(limits.queueMessagesPerSecond, cost.queueMessages);
  const database = ceilingOf(limits.d1QueriesPerSecond, cost.d1Statements);
  return { namespace, queue, database, overall: Math.min(namespace, queue, database) };
}

/** A count or a rate for a table: two decimals below 10, whole numbers above, ∞ for no bound. */
export function formatFigure(value) {
  if (value === Infinity) return "∞";
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Math.abs(value) < 10 ? value.toFixed(2) : value.toFixed(0);
}

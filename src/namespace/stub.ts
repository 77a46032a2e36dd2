import type { Result } from "../errors";
import type { NamespaceRpc, Report, ReportAck } from "./contract";

type Remote<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/**
 * The NamespaceDO as its callers see it: each RPC method, answered asynchronously. Every
 * value crossing it is plain JSON-shaped data, so it is typed directly rather than through the
 * runtime's generic RPC mapping, which cannot follow the recursive JSON types.
 */
export type NamespaceStub = Remote<NamespaceRpc>;

/**
 * The object ids of the namespaces this isolate has called, by binding. getByName derives the id
 * from the name (a keyed hash) on every call; a stub belongs to its request, but an id does not,
 * so the id is derived once per namespace and each call only takes a stub for it.
 */
const ids = new WeakMap<DurableObjectNamespace, Map<string, DurableObjectId>>();
const MAX_IDS = 10_000;

export function namespaceStub(env: Env, namespaceId: string): NamespaceStub {
  const binding = env.NAMESPACE;
  let known = ids.get(binding);
  if (!known) ids.set(binding, (known = new Map()));
  let id = known.get(namespaceId);
  if (!id) {
    if (known.size >= MAX_IDS) known.clear();
    id = binding.idFromName(namespaceId);
    known.set(namespaceId, id);
  }
  return binding.get(id) as unknown as NamespaceStub;
}

/**
 * Sends an attempt's reports to its namespace's object. A stub whose call threw may be broken
 * for good (the object was reset), so the next call takes a new one; a report that repeats
 * harmlessly is sent again at once. Log lines are not, since the first call may have stored them.
 */
export function reporter(stubFor: () => NamespaceStub, taskId: string, token: string): (report: Report) => Promise<Result<ReportAck>> {
  let stub = stubFor();
  return async (report) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await stub.report(taskId, token, report);
      } catch (err) {
        stub = stubFor();
        if (attempt >= 1 || report.kind === "logs") throw err;
      }
    }
  };
}

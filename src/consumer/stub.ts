import type { DurableObject } from "cloudflare:workers";
import type { NamespaceDO } from "../namespace/do";

type Remote<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/**
 * The NamespaceDO as its callers see it: each public method, answered asynchronously. Every
 * value crossing it is plain JSON-shaped data, so it is typed directly rather than through the
 * runtime's generic RPC mapping, which cannot follow the recursive JSON types.
 */
export type NamespaceStub = Remote<Omit<NamespaceDO, keyof DurableObject | "clock" | "io">>;

export const namespaceStub = (env: Env, namespaceId: string): NamespaceStub =>
  env.NAMESPACE.getByName(namespaceId) as unknown as NamespaceStub;

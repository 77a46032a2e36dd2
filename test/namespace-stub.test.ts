import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { namespaceStub } from "../src/namespace/stub";

// namespaceStub derives a namespace's object id once per isolate (src/namespace/stub.ts): every
// stub it hands out must still reach the object getByName reaches, and that object its name.
const idOf = (stub: unknown): DurableObjectId => (stub as DurableObjectStub).id;

describe("namespaceStub", () => {
  it("reaches, call after call, the object getByName reaches, which knows its name", async () => {
    const name = "ns_stubcache000000000a";
    const first = namespaceStub(env, name);
    const again = namespaceStub(env, name);
    expect(idOf(first).equals(env.NAMESPACE.getByName(name).id)).toBe(true);
    expect(idOf(again).equals(idOf(first))).toBe(true);
    expect(again).not.toBe(first);
    const seen = await runInDurableObject(again as unknown as DurableObjectStub, (_instance, state) => state.id.name);
    expect(seen).toBe(name);
  });

  it("reaches a different object for a different namespace", () => {
    const a = namespaceStub(env, "ns_stubcache000000000b");
    const b = namespaceStub(env, "ns_stubcache000000000c");
    expect(idOf(a).equals(idOf(b))).toBe(false);
    expect(idOf(b).equals(env.NAMESPACE.idFromName("ns_stubcache000000000c"))).toBe(true);
  });
});

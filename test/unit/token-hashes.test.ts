import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { TokenHashes } from "../../src/namespace/attempt-rows";

const hex = (token: string) => createHash("sha256").update(token).digest("hex");

describe("the hashes of callback tokens", () => {
  it("gives every token its SHA-256, remembered from its claim or not, however many were minted", () => {
    const hashes = new TokenHashes();
    expect(hashes.ofMinted("ns.a.mac")).toBe(hex("ns.a.mac"));
    expect(hashes.of("ns.a.mac")).toBe(hex("ns.a.mac"));
    // A second report of the attempt, and a token this object never minted, are hashed again.
    expect(hashes.of("ns.a.mac")).toBe(hex("ns.a.mac"));
    expect(hashes.of("ns.other.mac")).toBe(hex("ns.other.mac"));
    // Past the bound the remembered ones are dropped, and hashed again when their reports come.
    const minted = Array.from({ length: 5000 }, (_, i) => `ns.${i}.mac`);
    for (const token of minted) hashes.ofMinted(token);
    for (const token of [minted[0]!, minted[4095]!, minted[4096]!, minted[4999]!]) expect(hashes.of(token)).toBe(hex(token));
  });
});

describe("the hashes kept from claims", () => {
  it("hash a token once for its claim and its report, and again only when not kept", () => {
    const hashed: string[] = [];
    const hashes = new TokenHashes((token) => (hashed.push(token), hex(token)));
    hashes.ofMinted("ns.a.mac");
    expect(hashes.of("ns.a.mac")).toBe(hex("ns.a.mac"));
    expect(hashed).toEqual(["ns.a.mac"]);
    // Its report took it: a second report hashes again, as does a token never minted here.
    hashes.of("ns.a.mac");
    hashes.of("ns.b.mac");
    expect(hashed).toEqual(["ns.a.mac", "ns.a.mac", "ns.b.mac"]);
  });
});

import { describe, expect, it } from "vitest";
import { base64, base64url, newApiKey, newId, newSigningSecret, sha256Hex } from "../../src/ids";

describe("ids and secrets", () => {
  it("makes prefixed ids of 20 base-36 characters, all different", () => {
    const ids = Array.from({ length: 2000 }, () => newId("tsk"));
    for (const id of ids) expect(id).toMatch(/^tsk_[0-9a-z]{20}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // Every character of the alphabet turns up: none is excluded by the sampling.
    expect(new Set(ids.flatMap((id) => [...id.slice(4)])).size).toBe(36);
  });

  it("encodes base64url without padding and base64 with it", () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0xfe, 0x01]);
    expect(base64url(bytes)).toBe("-__-AQ");
    expect(base64(bytes)).toBe("+//+AQ==");
  });

  it("makes API keys and signing secrets of 32 random bytes", () => {
    expect(newApiKey()).toMatch(/^sk_[A-Za-z0-9_-]{43}$/);
    const secret = newSigningSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(atob(secret.slice("whsec_".length))).toHaveLength(32);
    expect(newApiKey()).not.toBe(newApiKey());
  });

  it("hashes with SHA-256 in hex", async () => {
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

import { describe, expect, it } from "vitest";
import { callbackKeyBytes, mintCallbackToken, newCallbackKey, parseCallbackToken, verifyCallbackToken } from "../../src/tasks/callback-token";

const NS = "ns_0123456789abcdefghij";
const OTHER_NS = "ns_jihgfedcba9876543210";
const key = callbackKeyBytes(newCallbackKey());

/** Parses a token that must be signed. */
function signed(token: string) {
  const shape = parseCallbackToken(token);
  if (!shape?.signed) throw new Error(`not a signed token: ${token}`);
  return shape;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("signed callback tokens", () => {
  it("name their namespace and verify for their task under their key", () => {
    const token = mintCallbackToken(key, NS, "tsk_a");
    expect(token).toMatch(/^ns_0123456789abcdefghij\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    expect(signed(token).namespaceId).toBe(NS);
    expect(verifyCallbackToken(key, signed(token), "tsk_a")).toBe(true);
    expect(mintCallbackToken(key, NS, "tsk_a")).not.toBe(token);
  });

  it("fail for another task, another key or another namespace", () => {
    const token = mintCallbackToken(key, NS, "tsk_a");
    expect(verifyCallbackToken(key, signed(token), "tsk_b")).toBe(false);
    expect(verifyCallbackToken(callbackKeyBytes(newCallbackKey()), signed(token), "tsk_a")).toBe(false);
    expect(verifyCallbackToken(key, signed(token.replace(NS, OTHER_NS)), "tsk_a")).toBe(false);
  });

  it("fail when the nonce or the MAC is changed, even to another spelling of the same MAC bytes", () => {
    const token = mintCallbackToken(key, NS, "tsk_a");
    const { nonce, mac } = signed(token);
    const flip = (text: string, at: number, bit: number) => {
      const index = B64URL.indexOf(text[at] as string);
      return text.slice(0, at) + B64URL[index ^ bit] + text.slice(at + 1);
    };
    expect(verifyCallbackToken(key, signed(`${NS}.${flip(nonce, 3, 1)}.${mac}`), "tsk_a")).toBe(false);
    expect(verifyCallbackToken(key, signed(`${NS}.${nonce}.${flip(mac, 10, 1)}`), "tsk_a")).toBe(false);
    // The last of 43 characters carries 4 bits of the MAC and 2 unused ones: flipping an unused
    // bit decodes to the same bytes, but that spelling is not the token whose hash the attempt holds.
    expect(verifyCallbackToken(key, signed(`${NS}.${nonce}.${flip(mac, 42, 1)}`), "tsk_a")).toBe(false);
  });

  it("tell the unsigned format tokens had before from what is no callback token at all", () => {
    expect(parseCallbackToken(`${NS}.${"a".repeat(43)}`)).toEqual({ signed: false, namespaceId: NS });
    for (const garbage of ["", "garbage", `${NS}.short`, `ns_UPPER56789abcdefghij.${"a".repeat(43)}`, `${NS}.${"a".repeat(22)}.${"b".repeat(42)}`, `sk_${"a".repeat(43)}`]) {
      expect(parseCallbackToken(garbage)).toBeNull();
    }
  });
});

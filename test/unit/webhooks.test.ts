import { Webhook } from "standardwebhooks";
import { describe, expect, it, vi } from "vitest";
import { MAX_DELIVERY_ATTEMPTS, nextDelayMs, RETRY_DELAYS_MS, retryAfterMs } from "../../src/webhooks/schedule";
import { sign, signedHeaders } from "../../src/webhooks/signing";

describe("the delivery schedule", () => {
  it("waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h between 8 attempts (SPEC §7)", () => {
    expect(RETRY_DELAYS_MS).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    expect(MAX_DELIVERY_ATTEMPTS).toBe(8);
  });

  // Moved from test/webhooks.test.ts.
  it("keeps the jitter of every wait within ±20 %", () => {
    for (let attempt = 1; attempt < MAX_DELIVERY_ATTEMPTS; attempt++) {
      const base = RETRY_DELAYS_MS[attempt - 1] ?? 0;
      expect(nextDelayMs(attempt, () => 0)).toBe(Math.round(base * 0.8));
      expect(nextDelayMs(attempt, () => 0.999999)).toBeLessThanOrEqual(Math.round(base * 1.2));
    }
    expect(nextDelayMs(MAX_DELIVERY_ATTEMPTS)).toBeNull();
  });

  it("reads Retry-After as seconds or a date, kept within the schedule's bounds", () => {
    expect(retryAfterMs("120", 0)).toBe(120_000);
    expect(retryAfterMs(" 7 ", 0)).toBe(7_000);
    expect(retryAfterMs("1", 0)).toBe(5_000);
    expect(retryAfterMs("999999", 0)).toBe(36_000_000);
    expect(retryAfterMs(new Date(90_000).toUTCString(), 30_000)).toBe(60_000);
    expect(retryAfterMs(new Date(0).toUTCString(), 60_000)).toBe(5_000);
    for (const bad of [null, "", "  ", "soon"]) expect(retryAfterMs(bad, 0), String(bad)).toBeNull();
  });
});

describe("webhook signatures", () => {
  const secret = `whsec_${btoa("k".repeat(32))}`;
  const body = JSON.stringify({ type: "task.completed", data: { task: { task_id: "tsk_1" } } });

  it("sign what the standardwebhooks package verifies, and nothing tampered", async () => {
    const now = Date.now();
    const headers = await signedHeaders([secret], "msg_1", body, now);
    expect(headers["webhook-timestamp"]).toBe(String(Math.floor(now / 1000)));
    const verifier = new Webhook(secret.slice("whsec_".length));
    expect(verifier.verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(() => verifier.verify(body.replace("completed", "failed"), { ...headers })).toThrow();
    expect(() => verifier.verify(body, { ...headers, "webhook-id": "msg_2" })).toThrow();
  });

  it("list one signature a secret, each verifiable alone (rotation)", async () => {
    const old = `whsec_${btoa("o".repeat(32))}`;
    const headers = await signedHeaders([secret, old], "msg_1", body);
    expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
    for (const s of [secret, old]) expect(new Webhook(s.slice(6)).verify(body, { ...headers })).toEqual(JSON.parse(body));
  });

  it("import a secret's key once, and sign with each secret's own key after a rotation", async () => {
    const first = `whsec_${btoa("a".repeat(32))}`;
    const rotated = `whsec_${btoa("b".repeat(32))}`;
    const imports = vi.spyOn(crypto.subtle, "importKey");
    try {
      const now = Date.now();
      const signed = async (s: string) => signedHeaders([s], "msg_1", body, now);
      const verify = (s: string, headers: Record<string, string>) => new Webhook(s.slice(6)).verify(body, { ...headers });
      const a1 = await signed(first);
      const a2 = await signed(first);
      expect(imports).toHaveBeenCalledTimes(1);
      const b = await signed(rotated);
      expect(imports).toHaveBeenCalledTimes(2);
      expect(a2).toEqual(a1);
      expect(b["webhook-signature"]).not.toBe(a1["webhook-signature"]);
      expect(verify(rotated, { ...b })).toEqual(JSON.parse(body));
      expect(() => verify(first, { ...b })).toThrow();
      // The first secret still signs with its own key, not the rotated one's.
      expect(verify(first, { ...(await signed(first)) })).toEqual(JSON.parse(body));
    } finally {
      imports.mockRestore();
    }
  });

  it("accept a secret with or without its whsec_ prefix alike", async () => {
    expect(await sign(secret, "msg_1", 1_700_000_000, body)).toBe(await sign(secret.slice(6), "msg_1", 1_700_000_000, body));
    expect(await sign(secret, "msg_1", 1_700_000_000, body)).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
  });
});

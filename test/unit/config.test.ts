import { describe, expect, it } from "vitest";
import { config } from "../../src/config";

const env = (vars: Record<string, unknown>): Env => vars as unknown as Env;

describe("config", () => {
  it("fills SPEC §2's defaults and reads the overrides as numbers", () => {
    expect(config(env({}))).toEqual({
      adminToken: null,
      allowPrivateUrls: false,
      recordRetentionMs: 2_592_000_000,
      logRetentionMs: 604_800_000,
      publicUrl: null,
      handlerSliceMs: null,
      streamKeepAliveMs: null,
      queueWatchdogMs: null,
    });
    expect(
      config(env({ ADMIN_TOKEN: "t", ALLOW_PRIVATE_URLS: "TRUE", TASK_LOG_RETENTION_SECONDS: "60", PUBLIC_URL: "https://x.test//", HANDLER_SLICE_MS: "300", QUEUE_WATCHDOG_MS: "" })),
    ).toMatchObject({ adminToken: "t", allowPrivateUrls: true, logRetentionMs: 60_000, publicUrl: "https://x.test", handlerSliceMs: 300, queueWatchdogMs: null });
  });

  it("refuses a malformed value by name instead of reading it as a default", () => {
    expect(() => config(env({ TASK_RECORD_RETENTION_SECONDS: "thirty days" }))).toThrow(/TASK_RECORD_RETENTION_SECONDS/);
    expect(() => config(env({ ALLOW_PRIVATE_URLS: "yes" }))).toThrow(/ALLOW_PRIVATE_URLS/);
    expect(() => config(env({ HANDLER_SLICE_MS: "-5" }))).toThrow(/HANDLER_SLICE_MS/);
  });

  it("parses one env once", () => {
    const vars = env({ TASK_LOG_RETENTION_SECONDS: "10" });
    expect(config(vars)).toBe(config(vars));
  });
});

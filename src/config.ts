import { z } from "zod";

/**
 * The deployment's configuration (SPEC §2: `wrangler.toml` vars and secrets), parsed once per
 * `env` with zod and typed for everyone. A malformed value fails loudly with its name instead of
 * being read as a default somewhere and as something else elsewhere.
 */
export interface Config {
  adminToken: string | null;
  allowPrivateUrls: boolean;
  recordRetentionMs: number;
  logRetentionMs: number;
  /** Base URL put in processor callbacks; null: the origin of the request. */
  publicUrl: string | null;
  /** Overrides for tests and benchmarks; null: the built-in value. */
  handlerSliceMs: number | null;
  streamKeepAliveMs: number | null;
  queueWatchdogMs: number | null;
}

const seconds = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const optionalMs = z.preprocess((v) => (v === "" || v === undefined ? undefined : v), z.coerce.number().positive().optional());

const ConfigSchema = z.object({
  ADMIN_TOKEN: z.string().optional(),
  ALLOW_PRIVATE_URLS: z.preprocess((v) => (v === undefined || v === "" ? "false" : String(v).toLowerCase()), z.enum(["true", "false"])),
  TASK_RECORD_RETENTION_SECONDS: seconds(2_592_000),
  TASK_LOG_RETENTION_SECONDS: seconds(604_800),
  PUBLIC_URL: z.string().optional(),
  HANDLER_SLICE_MS: optionalMs,
  STREAM_KEEPALIVE_MS: optionalMs,
  QUEUE_WATCHDOG_MS: optionalMs,
});

const parsed = new WeakMap<object, Config>();

const NO_ENV = {};

/** The configuration of `env`, parsed on first use; no env at all (an app called bare in a test) reads as the defaults. */
export function config(env: Env | undefined): Config {
  const source: object = env ?? NO_ENV;
  const seen = parsed.get(source);
  if (seen) return seen;
  const result = ConfigSchema.safeParse(source);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new Error(`invalid configuration: ${issue?.path.join(".") ?? "env"}: ${issue?.message ?? "invalid"}`);
  }
  const v = result.data;
  const value: Config = {
    adminToken: v.ADMIN_TOKEN || null,
    allowPrivateUrls: v.ALLOW_PRIVATE_URLS === "true",
    recordRetentionMs: v.TASK_RECORD_RETENTION_SECONDS * 1000,
    logRetentionMs: v.TASK_LOG_RETENTION_SECONDS * 1000,
    publicUrl: v.PUBLIC_URL ? v.PUBLIC_URL.replace(/\/+$/, "") : null,
    handlerSliceMs: v.HANDLER_SLICE_MS ?? null,
    streamKeepAliveMs: v.STREAM_KEEPALIVE_MS ?? null,
    queueWatchdogMs: v.QUEUE_WATCHDOG_MS ?? null,
  };
  parsed.set(source, value);
  return value;
}

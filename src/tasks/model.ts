import { z } from "@hono/zod-openapi";

export const TASK_STATUSES = ["created", "queued", "processing", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "cancelled"];
export const isTerminal = (status: TaskStatus): boolean => TERMINAL_STATUSES.includes(status);

/** SPEC §5: every allowed transition; anything not listed here is refused. */
const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  created: ["queued", "cancelled"],
  queued: ["processing", "cancelled", "failed"],
  processing: ["completed", "failed", "cancelled", "queued"],
  completed: [],
  failed: [],
  cancelled: [],
};

/** Whether the state machine allows `from → to`. The only place that decides it. */
export const canTransition = (from: TaskStatus, to: TaskStatus): boolean => TRANSITIONS[from].includes(to);

/** Statuses that hold a slot under the namespace's concurrency limit. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = ["queued", "processing"];

export const TASK_TYPE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

export const LIMITS = {
  bodyBytes: 1024 * 1024,
  batchBodyBytes: 10 * 1024 * 1024,
  inputsBytes: 64 * 1024,
  outputsBytes: 1024 * 1024,
  logLineBytes: 8 * 1024,
  logLinesPerCall: 100,
  logLinesPerTask: 10_000,
  progressMessageChars: 1024,
  errorMessageChars: 4096,
} as const;

/** SPEC §4's quotas per namespace and their defaults; each may be set up to 10× its default. */
export const QUOTA_DEFAULTS = {
  max_webhooks: 20,
  max_processors: 100,
  max_open_streams: 1000,
  max_unfinished_tasks: 1_000_000,
  max_collections: 100,
} as const;
export type QuotaName = keyof typeof QUOTA_DEFAULTS;

export interface Settings {
  max_concurrent_tasks: number;
  processing_timeout_seconds: number;
  /** The namespace's token bucket: this many API requests a second, bursts of twice that. */
  requests_per_second: number;
  /** At most this many tasks of one concurrency_key are queued or processing at once; null: no limit. */
  max_concurrent_per_key: number | null;
  max_webhooks: number;
  max_processors: number;
  max_open_streams: number;
  max_unfinished_tasks: number;
  max_collections: number;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = {
  max_concurrent_tasks: 100,
  processing_timeout_seconds: 1800,
  requests_per_second: 100,
  max_concurrent_per_key: null,
  ...QUOTA_DEFAULTS,
};

const quota = (name: QuotaName) => z.number().int().min(0).max(10 * QUOTA_DEFAULTS[name]).optional();

export const SettingsSchema = z
  .object({
    max_concurrent_tasks: z.number().int().min(1).max(1000).optional(),
    processing_timeout_seconds: z.number().int().min(1).max(86400).optional(),
    requests_per_second: z.number().int().min(1).max(10_000).optional(),
    max_concurrent_per_key: z.number().int().min(1).max(1000).nullable().optional(),
    max_webhooks: quota("max_webhooks"),
    max_processors: quota("max_processors"),
    max_open_streams: quota("max_open_streams"),
    max_unfinished_tasks: quota("max_unfinished_tasks"),
    max_collections: quota("max_collections"),
  })
  .strict()
  .openapi("NamespaceSettingsInput");

/** The settings a namespace has, every one of them set (defaults filled in). */
export const SettingsOutputSchema = z
  .object({
    max_concurrent_tasks: z.number().int(),
    processing_timeout_seconds: z.number().int(),
    requests_per_second: z.number().int(),
    max_concurrent_per_key: z.number().int().nullable(),
    max_webhooks: z.number().int(),
    max_processors: z.number().int(),
    max_open_streams: z.number().int(),
    max_unfinished_tasks: z.number().int(),
    max_collections: z.number().int(),
  })
  .openapi("NamespaceSettings");

export const ProgressSchema = z
  .object({
    percent: z.number().min(0).max(100).nullable(),
    message: z.string().nullable(),
    processed: z.number().int().min(0).nullable(),
    total: z.number().int().min(0).nullable(),
  })
  .openapi("TaskProgress");
export type Progress = z.infer<typeof ProgressSchema>;

export const TaskErrorSchema = z
  .object({ code: z.string(), message: z.string(), retryable: z.boolean() })
  .openapi("TaskError");
export type TaskError = z.infer<typeof TaskErrorSchema>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * A JSON object. Bodies reach validation already parsed from JSON, so every value in one is a
 * JSON value by construction; the narrower static type keeps Durable Object RPC types exact.
 */
export const JsonObjectSchema = z.record(z.string(), z.unknown()) as unknown as z.ZodType<JsonObject>;

const Timestamp = z.string().openapi({ format: "date-time", example: "2026-11-29T12:00:00.000Z" });

export const WAITING_REASONS = ["concurrency_limit", "concurrency_key", "scheduled", "rate_limited"] as const;
export type WaitingReason = (typeof WAITING_REASONS)[number];

export const WaitingSchema = z
  .object({
    reason: z.enum(WAITING_REASONS),
    position: z.number().int().openapi({ description: "Place among the tasks waiting for the same reason; 1 = next" }),
    eta_seconds: z.number().int().nullable().openapi({ description: "Estimated seconds to start; null without a recent completion rate" }),
  })
  .openapi("TaskWaiting");
export type Waiting = z.infer<typeof WaitingSchema>;

/** The longest a task may be scheduled ahead (SPEC §5): 30 days. */
export const MAX_DELAY_SECONDS = 30 * 86400;
export const CONCURRENCY_KEY_MAX_CHARS = 128;

export const TaskSchema = z
  .object({
    task_id: z.string().openapi({ example: "tsk_0mio2k1c80f3k2m9x8q7w6e5r4t3y" }),
    namespace_id: z.string(),
    task_type: z.string(),
    status: z.enum(TASK_STATUSES),
    inputs: JsonObjectSchema,
    outputs: JsonObjectSchema.nullable(),
    progress: ProgressSchema,
    error: TaskErrorSchema.nullable(),
    attempt: z.number().int(),
    max_attempts: z.number().int(),
    priority: z.number().int(),
    parent_task_id: z.string().nullable(),
    // Records written before these fields existed lack them: they read as null.
    concurrency_key: z.string().nullable().default(null),
    run_at: Timestamp.nullable().default(null),
    replay_of_task_id: z.string().nullable().default(null),
    queue_position: z.number().int().nullable(),
    waiting: WaitingSchema.nullable().default(null).openapi({ description: "Why a created task waits; computed live, null once admitted" }),
    created_at: Timestamp,
    queued_at: Timestamp.nullable(),
    started_at: Timestamp.nullable(),
    completed_at: Timestamp.nullable(),
    updated_at: Timestamp,
    timeout_at: Timestamp.nullable(),
    expires_at: Timestamp.nullable(),
  })
  .openapi("Task");
export type Task = z.infer<typeof TaskSchema>;

export const CreateTaskSchema = z
  .object({
    task_type: z.string().regex(TASK_TYPE_PATTERN, "must match ^[a-z][a-z0-9_]{0,63}$"),
    inputs: JsonObjectSchema.optional(),
    priority: z.number().int().min(0).max(9).optional(),
    max_attempts: z.number().int().min(1).max(10).optional(),
    parent_task_id: z.string().regex(/^tsk_[a-z0-9]{1,64}$/, "must be a task id").optional(),
    concurrency_key: z.string().min(1).max(CONCURRENCY_KEY_MAX_CHARS).optional().openapi({ description: "Fairness key: an end user, a customer, a collection" }),
    run_at: z.string().datetime({ offset: true }).optional().openapi({ description: "Start no earlier than this (at most 30 days ahead)" }),
    delay_seconds: z.number().int().min(0).max(MAX_DELAY_SECONDS).optional().openapi({ description: "Start no earlier than this many seconds from now" }),
  })
  .strict()
  .openapi("CreateTask");
export type CreateTaskInput = z.infer<typeof CreateTaskSchema>;

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LogLineInputSchema = z
  .object({ level: z.enum(LOG_LEVELS).optional(), message: z.string() })
  .strict();
export type LogLineInput = z.infer<typeof LogLineInputSchema>;

export const LogLineSchema = z
  .object({ timestamp: Timestamp, level: z.enum(LOG_LEVELS), message: z.string(), attempt: z.number().int() })
  .openapi("TaskLogLine");
export type LogLine = z.infer<typeof LogLineSchema>;

export const ProgressInputSchema = z
  .object({
    percent: z.number().min(0).max(100).optional(),
    message: z.string().max(LIMITS.progressMessageChars).optional(),
    processed: z.number().int().min(0).optional(),
    total: z.number().int().min(0).optional(),
  })
  .strict()
  .openapi("ProgressReport");
export type ProgressInput = z.infer<typeof ProgressInputSchema>;

export const StatsSchema = z
  .object({
    created: z.number().int(),
    queued: z.number().int(),
    processing: z.number().int(),
    max_concurrent_tasks: z.number().int(),
    processing_timeout_seconds: z.number().int(),
  })
  .openapi("TaskStats");
export type Stats = z.infer<typeof StatsSchema>;

/** The byte length of a value's JSON text. */
export const jsonBytes = (value: unknown): number => new TextEncoder().encode(JSON.stringify(value)).byteLength;

/** The retry wait before attempt n+1 (SPEC §5): random in [0.5, 1] × min(5 s × 2^(n−1), 300 s). */
export function retryDelayMs(failedAttempt: number, random: () => number = Math.random): number {
  const cap = Math.min(5000 * 2 ** (failedAttempt - 1), 300_000);
  return Math.round(cap * (0.5 + 0.5 * random()));
}

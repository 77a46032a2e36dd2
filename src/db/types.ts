import type { LogLevel, LogLine } from "../tasks/model";

/**
 * The shapes the Durable Object's outbox carries to D1 and the API reads back from it. They
 * belong to db/, so that its queries import nothing from the Durable Object.
 */

/** A log line as the outbox holds it until it is flushed to D1. */
export interface LogPayload {
  seq: number;
  attempt: number;
  level: LogLevel;
  message: string;
  at: number;
}

/** A log line with its per-task sequence number, as stored in D1. */
export type NumberedLogLine = LogLine & { seq: number };

export interface Delivery {
  delivery_id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  status: "pending" | "succeeded" | "failed";
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  updated_at: string;
}

/** What the outbox carries to D1 for one delivery version. */
export interface MirroredDelivery {
  delivery: Delivery;
  created_ms: number;
}

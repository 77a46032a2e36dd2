import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { isRecord } from "./http.js";
import type { TaskEventBody } from "./types.js";

export { WebhookVerificationError };

/** A verified webhook delivery: a task event, `object.created` or `webhook.test`. */
export type WebhookEvent =
  | TaskEventBody
  | { id: string; type: "object.created" | "webhook.test"; created_at: string; namespace_id: string; data: Record<string, unknown> };

export type HeaderSource = Headers | Record<string, string | readonly string[] | undefined>;

function header(headers: HeaderSource, name: string): string {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? "";
  const record = headers as Record<string, string | readonly string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value.join(" ") : typeof value === "string" ? value : "";
}

/**
 * Verifies a webhook delivery (Standard Webhooks v1, SPEC §7) and returns its parsed body.
 * `body` must be the raw request body, unparsed; `headers` a Headers or a plain object (Node's
 * `req.headers` works). Throws `WebhookVerificationError` when the signature does not match or
 * the timestamp is more than five minutes off.
 */
export function verifyWebhook(secret: string, body: string | Uint8Array | ArrayBuffer, headers: HeaderSource): WebhookEvent {
  const payload = typeof body === "string" ? body : new TextDecoder().decode(body);
  const verified = new Webhook(secret).verify(payload, {
    "webhook-id": header(headers, "webhook-id"),
    "webhook-timestamp": header(headers, "webhook-timestamp"),
    "webhook-signature": header(headers, "webhook-signature"),
  });
  if (!isRecord(verified) || typeof verified.type !== "string" || typeof verified.id !== "string" || !isRecord(verified.data)) {
    throw new WebhookVerificationError("the signed body is not a webhook event");
  }
  return verified as WebhookEvent;
}

/** Every event type a webhook endpoint can subscribe to. */
export const EVENT_TYPES = [
  "task.created",
  "task.queued",
  "task.processing",
  "task.progress",
  "task.completed",
  "task.failed",
  "task.cancelled",
  "object.created",
  "webhook.test",
] as const;

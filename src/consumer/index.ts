import { BUILTIN_LEASE_SECONDS } from "../namespace/contract";
import { TaskMessageSchema } from "../namespace/messages";
import { namespaceStub } from "../namespace/stub";
import { runBuiltin, SLICE_MS } from "./builtin";
import { dispatchToProcessor } from "./processor";

/**
 * HANDLER_SLICE_MS overrides how long a built-in handler runs before it should yield. Only the
 * test projects that exercise yielding bind it (vitest.config.ts: checkpoints, scale).
 */
const sliceMs = (env: Env): number => {
  const configured = Number((env as { HANDLER_SLICE_MS?: string }).HANDLER_SLICE_MS);
  return Number.isFinite(configured) && configured > 0 ? configured : SLICE_MS;
};

/**
 * The `tasks` queue consumer. Each message names one attempt of one task; the NamespaceDO's
 * claim decides whether this delivery runs it, so duplicates and redeliveries are harmless.
 */
export async function consumeTasks(batch: MessageBatch, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const parsed = TaskMessageSchema.safeParse(message.body);
      if (!parsed.success) {
        console.error("dropping a malformed task message", message.id);
        message.ack();
        return;
      }
      try {
        const stubFor = () => namespaceStub(env, parsed.data.namespace_id);
        const claim = await stubFor().claim(parsed.data);
        if (claim.claimed) {
          if (claim.processor) await dispatchToProcessor(stubFor, claim, env);
          else await runBuiltin(stubFor, claim, env, BUILTIN_LEASE_SECONDS, sliceMs(env));
        }
        message.ack();
      } catch (err) {
        console.error(`task message ${message.id} failed; retrying`, err);
        message.retry({ delaySeconds: Math.min(2 ** message.attempts, 60) });
      }
    }),
  );
}

/** The `tasks-dlq` consumer: a message the queue gave up on fails its task with `dispatch_failed`. */
export async function consumeDeadLetters(batch: MessageBatch, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const parsed = TaskMessageSchema.safeParse(message.body);
      if (!parsed.success) {
        message.ack();
        return;
      }
      try {
        await namespaceStub(env, parsed.data.namespace_id).deadLetter(parsed.data);
        message.ack();
      } catch (err) {
        console.error(`dead letter ${message.id} failed; retrying`, err);
        message.retry({ delaySeconds: 10 });
      }
    }),
  );
}

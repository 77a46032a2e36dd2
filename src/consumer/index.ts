import { handlerFor } from "../handlers/table";
import { BUILTIN_LEASE_SECONDS, type ClaimManyItem, MAX_CLAIM_AHEAD } from "../namespace/contract";
import { type TaskMessage, TaskMessageSchema } from "../namespace/messages";
import { namespaceStub } from "../namespace/stub";
import { ReportBatcher } from "./batcher";
import { type Claimed, runBuiltin, runBuiltinBatch, SLICE_MS } from "./builtin";
import { dispatchToProcessor } from "./processor";
import { config } from "../config";

/**
 * HANDLER_SLICE_MS overrides how long a built-in handler runs before it should yield. Only the
 * test projects that exercise yielding bind it (vitest.config.ts: checkpoints, scale).
 */
const sliceMs = (env: Env): number => config(env).handlerSliceMs ?? SLICE_MS;

interface Delivery {
  message: Message;
  body: TaskMessage;
}

const retry = (message: Message): void => message.retry({ delaySeconds: Math.min(2 ** message.attempts, 60) });

/**
 * The `tasks` queue consumer. Each message names one attempt of one task; the NamespaceDO's
 * claim decides whether this delivery runs it, so duplicates and redeliveries are harmless.
 * A batch is worked per namespace: one claim call for all its messages, its attempts' reports
 * sent together, and tasks of a type whose handler works batches handed to it at once.
 */
export async function consumeTasks(batch: MessageBatch, env: Env): Promise<void> {
  const byNamespace = new Map<string, Delivery[]>();
  for (const message of batch.messages) {
    const parsed = TaskMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      console.error("dropping a malformed task message", message.id);
      message.ack();
      continue;
    }
    const group = byNamespace.get(parsed.data.namespace_id) ?? [];
    group.push({ message, body: parsed.data });
    byNamespace.set(parsed.data.namespace_id, group);
  }
  await Promise.all([...byNamespace].map(([namespaceId, deliveries]) => consumeNamespace(namespaceId, deliveries, env)));
}

async function consumeNamespace(namespaceId: string, deliveries: Delivery[], env: Env): Promise<void> {
  const stubFor = () => namespaceStub(env, namespaceId);
  const started = Date.now();
  let claims: ClaimManyItem[];
  try {
    claims = await stubFor().claimMany(deliveries.map((d) => ({ task_id: d.body.task_id, attempt: d.body.attempt, slice: d.body.slice })));
  } catch (err) {
    console.error(`claims of ${deliveries.length} messages of ${namespaceId} failed; retrying`, err);
    for (const d of deliveries) retry(d.message);
    return;
  }
  const batcher = new ReportBatcher(stubFor);
  const work: Promise<void>[] = [];
  const builtins = new Map<string, { message: Message; claim: Claimed }[]>();
  deliveries.forEach((delivery, i) => {
    const claim = claims[i];
    if (!claim || (!claim.claimed && "retry" in claim)) return retry(delivery.message);
    if (!claim.claimed) return delivery.message.ack();
    if (claim.processor) {
      work.push(settled([delivery.message], dispatchToProcessor(stubFor, claim, env, batcher)));
      return;
    }
    const group = builtins.get(claim.task.task_type) ?? [];
    group.push({ message: delivery.message, claim });
    builtins.set(claim.task.task_type, group);
  });
  const deadline = started + sliceMs(env);
  for (const [taskType, group] of builtins) {
    const handler = handlerFor(taskType);
    // Even a batch of one: its final report claims ahead whatever its slot and others admitted.
    if (handler?.runBatch) {
      const definition = { inputs: handler.inputs, runBatch: handler.runBatch.bind(handler) };
      const run = (claims: Claimed[], beforeSettle: () => void) =>
        runBuiltinBatch(claims, definition, env, batcher, BUILTIN_LEASE_SECONDS, sliceMs(env), undefined, beforeSettle);
      const ahead = claimingAhead(taskType, run, batcher, deadline);
      const first = run(group.map((g) => g.claim), ahead.ask);
      // The messages are done with once their own batch is; the batches claimed ahead have none.
      work.push(settled(group.map((g) => g.message), first));
      work.push(first.then(ahead.rest, () => undefined));
    } else {
      for (const { message, claim } of group) {
        work.push(settled([message], runBuiltin(stubFor, claim, env, BUILTIN_LEASE_SECONDS, sliceMs(env), undefined, batcher)));
      }
    }
  }
  await Promise.all(work);
}

/**
 * A consumer invocation working its namespace's backlog of a batch handler's type (issue 11):
 * with each batch's final reports it claims the tasks their freed slots admitted (`ask`, see
 * ReportBatcher.claimAhead) and runs them as the next batch (`rest`), while its slice lasts.
 * Each claimed attempt has its own token and lease as a queue claim's would: if this
 * invocation dies, the lease runs out and the task is retried. After the slice, the tasks
 * admitted are left to the queue, whose messages the alarm sends as ever.
 */
function claimingAhead(taskType: string, run: (claims: Claimed[], beforeSettle: () => void) => Promise<void>, batcher: ReportBatcher, deadline: number) {
  let demand: Promise<Claimed[]> | null = null;
  const ask = (): void => {
    demand = Date.now() < deadline ? batcher.claimAhead({ task_types: [taskType], max: MAX_CLAIM_AHEAD }) : null;
  };
  const rest = async (): Promise<void> => {
    for (;;) {
      const pending = demand;
      demand = null;
      if (!pending) return;
      // No final report carried it (every attempt had ended elsewhere): it goes alone.
      batcher.flushClaims();
      const claims = await pending;
      if (claims.length === 0) return;
      try {
        await run(claims, ask);
      } catch (err) {
        // Their final reports could not be sent: the attempts end by their leases and are retried.
        console.error(`a batch of ${claims.length} ${taskType} tasks claimed ahead failed`, err);
        return;
      }
    }
  };
  return { ask, rest };
}

/** Acks the messages once their work is done; work that threw is delivered again. */
async function settled(messages: Message[], work: Promise<void>): Promise<void> {
  try {
    await work;
    for (const message of messages) message.ack();
  } catch (err) {
    console.error(`task messages ${messages.map((m) => m.id).join(", ")} failed; retrying`, err);
    for (const message of messages) retry(message);
  }
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

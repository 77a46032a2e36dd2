import { createApp } from "./api/app";
import { consumeDeadLetters, consumeTasks } from "./consumer";
import { sweepPendingObjects } from "./dataplane/objects";
import { runRetention } from "./db/retention";

export { NamespaceDO } from "./namespace/do";

const app = createApp();

export default {
  fetch: app.fetch,

  async queue(batch, env) {
    if (batch.queue.endsWith("-dlq")) await consumeDeadLetters(batch, env);
    else await consumeTasks(batch, env);
  },

  async scheduled(controller, env) {
    await sweepPendingObjects(env, controller.scheduledTime);
    await runRetention(env, controller.scheduledTime);
  },
} satisfies ExportedHandler<Env>;

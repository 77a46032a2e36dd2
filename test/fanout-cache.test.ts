import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NamespaceDO } from "../src/namespace/do";
import { stub, tenant } from "./helpers";

/** The parts of the object this test reaches into. */
type Inner = {
  core: {
    store: { storeEvent(type: string, taskId: string | null, data: Record<string, unknown>, at: number): string };
    webhooks: {
      create(input: { url: string; event_types: string[]; description: string | null }, now: number): { webhook: { webhook_id: string } };
      update(webhookId: string, patch: { is_active?: boolean; event_types?: string[] }, now: number): unknown;
      disable(webhookId: string, reason: string, now: number): void;
    };
  };
};

describe("webhook fan-out within one synchronous step", () => {
  it("sees endpoints created, changed and disabled between two events of the same step", async () => {
    const t = await tenant();
    const deliveries = await runInDurableObject(stub(t), (instance: NamespaceDO, state) => {
      const { core } = instance as unknown as Inner;
      const now = instance.clock.now();
      const event = (type: string) => core.store.storeEvent(type, null, {}, now);
      const before = event("task.created");
      const hook = core.webhooks.create({ url: "https://example.com/hook", event_types: ["task.created"], description: null }, now).webhook.webhook_id;
      const created = event("task.created");
      const otherType = event("task.queued");
      core.webhooks.update(hook, { event_types: ["task.queued"] }, now);
      const retyped = event("task.queued");
      core.webhooks.disable(hook, "test", now);
      const disabled = event("task.queued");
      const byEvent = new Map(
        state.storage.sql.exec<{ event_id: string }>("SELECT event_id FROM deliveries WHERE webhook_id = ?", hook).toArray().map((r) => [r.event_id, true]),
      );
      return [before, created, otherType, retyped, disabled].map((id) => byEvent.has(id));
    });
    expect(deliveries).toEqual([false, true, false, true, false]);
  });
});

import type { Result } from "../errors";
import type { Settings, Task } from "../tasks/model";
import type { Clock } from "./clock";
import type { NamespaceCore } from "./core";
import type { UnfinishedTasks } from "./limits";
import type { Sql } from "./sql";
import type { EventStreams } from "./streams";
import type { TaskStore } from "./store";
import type { Waiters } from "./waiters";
import type { WebhookStore } from "./webhooks";

/**
 * A part of the NamespaceDO (tasks, scheduler, deliveries, stream gate): it reaches the shared
 * state under the names the object's own methods always used, so code moves between parts as is.
 */
export abstract class NamespacePart {
  protected readonly ctx: DurableObjectState;
  protected readonly env: Env;
  protected readonly clock: Clock;
  protected readonly sql: Sql;
  protected readonly store: TaskStore;
  protected readonly webhooks: WebhookStore;
  protected readonly streams: EventStreams;
  protected readonly waiters: Waiters;
  protected readonly unfinished: UnfinishedTasks;

  constructor(protected readonly core: NamespaceCore) {
    this.ctx = core.ctx;
    this.env = core.env;
    this.clock = core.clock;
    this.sql = core.sql;
    this.store = core.store;
    this.webhooks = core.webhooks;
    this.streams = core.streams;
    this.waiters = core.waiters;
    this.unfinished = core.unfinished;
  }

  /** Settings and the namespace id change (configure), so they are read from the core each time. */
  protected get settings(): Settings {
    return this.core.settings;
  }

  protected set settings(settings: Settings) {
    this.core.settings = settings;
  }

  protected get namespaceId(): string {
    return this.core.namespaceId;
  }

  protected set namespaceId(namespaceId: string) {
    this.core.namespaceId = namespaceId;
  }

  protected armAlarm(): Promise<void> {
    return this.core.armAlarm();
  }

  protected admit(now: number): void {
    this.core.admit(now);
  }

  protected findTask(taskId: string): Promise<Result<Task>> {
    return this.core.findTask(taskId);
  }
}

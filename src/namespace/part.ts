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
  constructor(protected readonly core: NamespaceCore) {}

  protected get ctx(): DurableObjectState {
    return this.core.ctx;
  }

  protected get env(): Env {
    return this.core.env;
  }

  protected get clock(): Clock {
    return this.core.clock;
  }

  protected get sql(): Sql {
    return this.core.sql;
  }

  protected get store(): TaskStore {
    return this.core.store;
  }

  protected get webhooks(): WebhookStore {
    return this.core.webhooks;
  }

  protected get streams(): EventStreams {
    return this.core.streams;
  }

  protected get waiters(): Waiters {
    return this.core.waiters;
  }

  protected get unfinished(): UnfinishedTasks {
    return this.core.unfinished;
  }

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

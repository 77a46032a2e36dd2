import { fail, ok, type Result } from "../src/errors";
import { notFoundMessage } from "../src/namespace/core";
import { NamespaceDO } from "../src/namespace/do";
import { InvalidTransition } from "../src/namespace/task-row";
import type { Task, TaskStatus } from "../src/tasks/model";

/**
 * The Durable Object as the tests bind it (test/worker.ts): the production class plus the seams
 * that only tests and the benchmarks may call, so none of them is an RPC method in production.
 */
export class TestNamespaceDO extends NamespaceDO {
  /**
   * Moves a task to `to` through the state machine alone, bypassing the guards of the public
   * operations. For tests of the transition table; a refused transition is a conflict.
   */
  forceTransition(taskId: string, to: TaskStatus): Result<Task> {
    const { store } = this.core;
    const row = store.get(taskId);
    if (!row) return fail("not_found", notFoundMessage(taskId, this.env));
    try {
      return ok(store.toTask(store.transition(row, to, {}, this.clock.now())));
    } catch (err) {
      if (err instanceof InvalidTransition) return fail("conflict", err.message, { status: row.status });
      throw err;
    }
  }

  /** Open streams and long-polls, by kind. */
  streamCounts(): { sse: number; websocket: number; long_polls: number } {
    return this.gate.streamCounts();
  }

  /** Webhook delivery attempts out right now. */
  deliveriesInFlight(): number {
    return this.deliveries.deliveriesInFlight();
  }

  /** A big backlog straight into SQLite (see FairOps.seedBacklog), for the fairness tests and bench. */
  seedBacklog(spec: { count: number; task_type: string; keys: number; key_prefix: string; priority: number }): Promise<number> {
    return this.fair.seedBacklog(spec);
  }
}

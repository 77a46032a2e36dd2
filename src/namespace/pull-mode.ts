import { config } from "../config";
import { fail, ok, type Result } from "../errors";
import type { CreateTaskInput, Task } from "../tasks/model";
import { type AttemptBatches, fenceReports } from "./attempt-batches";
import type { Attempts } from "./attempts";
import { type BatchReportResult, type ClaimedAttempt, type Lease, MAX_LEASE_TASKS, MAX_LEASE_WAIT_SECONDS, type ProcessorConfig, type ProcessorMode, type Report } from "./contract";
import type { NamespaceCore } from "./core";
import { NamespacePart } from "./part";
import { keepBatch, seenBatch } from "./batch-keys";
import { batchTasks } from "./batch-view";
import { leasable, queuedWithoutSend } from "./pull";
import type { StreamGate } from "./stream-gate";
import type { TaskOps } from "./tasks";

/**
 * Batches and pull mode (SPEC §6): creating many tasks in one atomic step, workers leasing the
 * queued tasks of a pulled type (long-polling for them), and many attempt reports in one call.
 */
export class PullMode extends NamespacePart {
  constructor(
    core: NamespaceCore,
    private readonly tasks: TaskOps,
    private readonly attempts: Attempts,
    private readonly gate: StreamGate,
    private readonly batches: AttemptBatches,
  ) {
    super(core);
  }

  /**
   * `POST /v1/tasks/batch`: every task created in one atomic step, or none. Each item is checked
   * as a single create would be (the first bad one is named by `details.index`); the quota
   * applies to the whole batch. `batch.key` (the Idempotency-Key, else a fresh id) keys the
   * batch, so a repeat creates nothing twice even when D1 kept no response to replay; the same
   * key with another request (`batch.requestHash`) is refused.
   */
  async createTaskBatch(inputs: CreateTaskInput[], origin: string, batch: { key: string; requestHash: string }): Promise<Result<Task[]>> {
    // A character no header value may carry keeps these keys apart from single creates' keys.
    const key = `batch\n${batch.key}`;
    let seen = seenBatch(this.sql, key, inputs.length, this.clock.now());
    if (!seen) {
      const refused = this.tasks.refuseInputs(inputs);
      if (inputs.some((input) => input.parent_task_id !== undefined)) {
        // The first bad item is named: a missing parent before the first item refused above comes first.
        const orphan = await this.refuseParents(refused ? inputs.slice(0, refused.index) : inputs);
        if (orphan) return orphan;
        // The parents' lookups may have waited on D1, and a twin of this call stored the batch meanwhile.
        if (!refused) seen = seenBatch(this.sql, key, inputs.length, this.clock.now());
      }
      if (refused) return refused.refusal;
    }
    if (seen && seen.requestHash !== batch.requestHash) {
      return fail("validation_error", "this Idempotency-Key was used with a different request", { header: "Idempotency-Key" });
    }
    let answer: { ids: string[]; tasks: (Task | null)[] };
    if (seen) {
      if (seen.ids.length !== inputs.length) return fail("internal_error", "a stored batch lost some of its tasks' keys");
      answer = { ids: seen.ids, tasks: batchTasks(this.sql, this.store, seen.ids, new Set(), this.clock.now()) };
    } else {
      // The key commits with the tasks, and the answer is read in the same step.
      const created = this.tasks.createAll(inputs, origin, (ids, now) => {
        keepBatch(this.sql, key, batch.requestHash, ids, now);
        return { ids, tasks: batchTasks(this.sql, this.store, ids, new Set(ids), now) };
      });
      if (!created.ok) return created;
      answer = created.value;
      await this.armAlarm();
    }
    const tasks: Task[] = [];
    for (const [index, task] of answer.tasks.entries()) {
      if (task) {
        tasks.push(task);
        continue;
      }
      // A repeated batch whose task has finished since: its record is in D1.
      const found = await this.findTask(answer.ids[index] ?? "");
      if (!found.ok) return fail("internal_error", "a task of the batch vanished after insert");
      tasks.push(found.value);
    }
    return ok(tasks);
  }

  /** The first item of a batch whose parent task does not exist, named by its index; each parent is looked up once. */
  private async refuseParents(inputs: CreateTaskInput[]): Promise<Result<never> | null> {
    const parents = new Map<string, boolean>();
    for (const [index, input] of inputs.entries()) {
      const parent = input.parent_task_id;
      if (parent === undefined) continue;
      if (!parents.has(parent)) parents.set(parent, (await this.findTask(parent)).ok);
      if (!parents.get(parent)) return fail("validation_error", `parent task ${parent} not found`, { index, field: "parent_task_id" });
    }
    return null;
  }

  /**
   * `POST /v1/processors/{task_type}/lease`: up to `maxTasks` leasable tasks of a pulled type,
   * each claimed as a queue message's would be (its own attempt, lease and token). With
   * `waitMs`, waits until at least one is there or the time is up.
   */
  async leaseTasks(taskType: string, maxTasks: number, waitMs: number, origin: string): Promise<Result<Lease[]>> {
    const processor = this.core.processors.processorRow(taskType);
    if (!processor) return fail("not_found", `no processor for task_type "${taskType}"`);
    if (processor.mode !== "pull") return fail("conflict", `the processor of "${taskType}" is in push mode; PUT it with mode "pull" to lease its tasks`, { mode: processor.mode });
    const base = config(this.env).publicUrl ?? origin.replace(/\/+$/, "");
    const deadline = this.clock.now() + Math.min(Math.max(0, waitMs), MAX_LEASE_WAIT_SECONDS * 1000);
    let waited = false;
    for (;;) {
      const leases = this.claimLeasable(taskType, Math.min(maxTasks, MAX_LEASE_TASKS)).map(
        (claim): Lease => ({
          task: claim.task,
          attempt: claim.task.attempt,
          lease_expires_at: claim.lease_expires_at,
          timeout_at: claim.timeout_at,
          callback: { url: `${base}/v1/tasks/${claim.task.task_id}/callback`, token: claim.token },
        }),
      );
      if (leases.length > 0) await this.armAlarm();
      const left = deadline - this.clock.now();
      if (leases.length > 0 || left <= 0) return ok(leases);
      if (!waited) {
        const refused = this.gate.streamQuotaExceeded();
        if (refused) return { ok: false, error: refused };
        waited = true;
      }
      await this.core.leaseWaiters.wait(left);
    }
  }

  /**
   * Claims up to `limit` leasable tasks of a type for a pull worker, each as the queue
   * consumer's claim would and in its own transaction, all in one synchronous step: a claim
   * that throws is left out and changes nothing. The caller arms the alarm once after.
   */
  private claimLeasable(taskType: string, limit: number): ClaimedAttempt[] {
    const now = this.clock.now();
    // One transaction, each claim a savepoint in it: the step's end writes what they deferred.
    return this.ctx.storage.transactionSync(() =>
      this.store.bulk(() => {
        const items = leasable(this.sql, taskType, now, limit).map((known) => ({ message: { task_id: known.row.task_id, attempt: known.row.attempt }, known }));
        return this.batches.claimEach(items, now, true).flatMap((claim) => (claim?.claimed ? [claim] : []));
      }),
    );
  }

  /**
   * `POST /v1/callbacks`: each report fenced and applied on its own, exactly as its single
   * callback would be, in the order given; one failing changes nothing for the others.
   */
  async reportBatch(reports: { token: string; report: Report }[]): Promise<BatchReportResult[]> {
    // Read here, in the same synchronous step that applies them, and handed on.
    const known = fenceReports(this.sql, this.attempts.tokenHashes, reports).map(({ tokenHash, report, found }) =>
      found.attempt ? { task_id: found.attempt.task_id, tokenHash, report, found } : null,
    );
    // One bulk step (applyReports): the reports' events, log lines and snapshots go out in a few statements.
    const outcomes = await this.batches.applyReports(known.filter((item) => item !== null));
    let next = 0;
    return known.map((item): BatchReportResult => {
      if (!item) return { task_id: null, status: 401, error: { type: "unauthorized", message: "invalid callback token" } };
      const outcome = outcomes[next++];
      if (!outcome) throw new Error("a report of the batch got no answer");
      if (outcome.ok) return { task_id: item.task_id, status: 200, task: outcome.value.task, lease_expires_at: outcome.value.lease_expires_at };
      const { type, message, details } = outcome.error;
      // The answer has no status for an item that could not be applied: the call fails, as a single callback would.
      if (type === "internal_error") throw new Error(`the report of ${item.task_id} could not be applied`);
      return { task_id: item.task_id, status: type === "conflict" ? 409 : 401, error: { type, message, details } };
    });
  }

  /**
   * Creates or replaces a processor (in a transaction). A type switched from pull to push gives
   * its waiting tasks back to the queue.
   */
  putProcessor(taskType: string, url: string | null, leaseSeconds: number, mode: ProcessorMode, now: number): Result<{ processor: ProcessorConfig; secret: string | null }> {
    const wasPulled = this.core.processors.processorRow(taskType)?.mode === "pull";
    const result = this.core.processors.put(taskType, url, leaseSeconds, mode, this.settings.max_processors, now);
    if (result.ok && wasPulled && mode === "push") this.resumeQueueDelivery(taskType, now);
    return result;
  }

  /** Deletes a processor (in a transaction); the waiting tasks of a pulled type go back to the queue. */
  deleteProcessor(taskType: string, now: number): boolean {
    const wasPulled = this.core.processors.processorRow(taskType)?.mode === "pull";
    const gone = this.core.processors.remove(taskType);
    if (gone && wasPulled) this.resumeQueueDelivery(taskType, now);
    return gone;
  }

  /** Gives a type's queued tasks back to the queue when its pull processor goes away or pushes. */
  private resumeQueueDelivery(taskType: string, now: number): void {
    for (const taskId of queuedWithoutSend(this.sql, taskType)) this.store.setTimer(taskId, "send", now);
  }
}

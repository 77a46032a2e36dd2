import { fail, type Result } from "../errors";
import { base64url, randomBytes } from "../ids";
import { type Attempts, sha256 } from "./attempts";
import type { ClaimManyItem, Report, ReportAck, ReportManyItem } from "./contract";
import type { NamespaceCore } from "./core";
import type { TaskMessage } from "./messages";
import { NamespacePart } from "./part";

/**
 * Many attempts' claims or reports in one call (issue 11: the batched queue consumer, and pull
 * workers' `POST /v1/callbacks` through PullMode). Each item is worked exactly as its single
 * call would be, in its own transaction, in the order given: one refused or failing item
 * changes nothing for the others. The alarm is armed once, after the lot.
 */
export class AttemptBatches extends NamespacePart {
  constructor(
    core: NamespaceCore,
    private readonly attempts: Attempts,
  ) {
    super(core);
  }

  /**
   * Claims the attempts many queue messages carry, each as `claim` would, under its own new
   * token. An item whose claim threw is answered `{claimed: false, retry: true}`: its message
   * should be delivered again.
   */
  async claimMany(messages: Pick<TaskMessage, "task_id" | "attempt" | "slice">[]): Promise<ClaimManyItem[]> {
    const results: ClaimManyItem[] = [];
    try {
      for (const message of messages) {
        const token = `${this.namespaceId}.${base64url(randomBytes(32))}`;
        const now = this.clock.now();
        try {
          results.push(this.ctx.storage.transactionSync(() => this.attempts.claim(message, token, now)));
        } catch (err) {
          console.error(`claim of ${message.task_id} failed`, err);
          results.push({ claimed: false, reason: "the claim failed", retry: true });
        }
      }
    } finally {
      await this.armAlarm();
    }
    return results;
  }

  /** Applies many attempts' reports, each as `report` would, fenced by its own token. */
  reportMany(items: ReportManyItem[]): Promise<Result<ReportAck>[]> {
    return this.applyReports(items.map((item) => ({ task_id: item.task_id, tokenHash: sha256(item.token), report: item.report })));
  }

  /**
   * The one implementation of a batch of reports (reportMany, PullMode.reportBatch): each
   * fenced by its token's hash and applied in its own transaction. A report that threw is
   * answered `internal_error` (retryable) and changed nothing.
   */
  async applyReports(items: { task_id: string; tokenHash: string; report: Report }[]): Promise<Result<ReportAck>[]> {
    const results: Result<ReportAck>[] = [];
    try {
      for (const { task_id: taskId, tokenHash, report } of items) {
        const now = this.clock.now();
        try {
          results.push(this.store.bulkItem(() => this.ctx.storage.transactionSync(() => this.attempts.report(taskId, tokenHash, report, now))));
        } catch (err) {
          console.error(`report of ${taskId} failed`, err);
          results.push(fail("internal_error", "the report could not be applied", { retryable: true }));
        }
      }
    } finally {
      await this.armAlarm();
    }
    return results;
  }
}

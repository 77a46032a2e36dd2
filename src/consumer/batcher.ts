import { fail, type Result } from "../errors";
import type { ClaimAhead, ClaimedAttempt, Report, ReportReceipt } from "../namespace/contract";
import type { NamespaceStub } from "../namespace/stub";
import { jsonBytes } from "../tasks/model";

/** Reports one `reportMany` call carries at most, by count and by approximate JSON bytes. */
const MAX_ITEMS = 200;
const MAX_BYTES = 4 * 1024 * 1024;

export interface Pending {
  item: { task_id: string; token: string; report: Report };
  bytes: number;
  resolve: (result: Result<ReportReceipt>) => void;
  reject: (err: unknown) => void;
}

/**
 * Collects the reports of the attempts one consumer invocation runs in a namespace and sends
 * those made in the same turn of the event loop as one `reportMany` call. Each report is still
 * applied and fenced on its own by the object, in the order it was made, and its caller gets its
 * own answer. Heartbeats of all running attempts go out together on one timer.
 */
export class ReportBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  /** A claim-ahead to make with the next call (see `claimAhead`). */
  private demand: { ahead: ClaimAhead; resolve: (claims: ClaimedAttempt[]) => void } | null = null;
  private stub: NamespaceStub;
  private readonly beats = new Map<number, { timer: ReturnType<typeof setInterval>; attempts: Map<string, Beat> }>();

  constructor(private readonly stubFor: () => NamespaceStub) {
    this.stub = stubFor();
  }

  /** A function sending one attempt's reports, like `reporter()`. */
  sender(taskId: string, token: string): (report: Report) => Promise<Result<ReportReceipt>> {
    return (report) => this.send(taskId, token, report);
  }

  send(taskId: string, token: string, report: Report): Promise<Result<ReportReceipt>> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item: { task_id: taskId, token, report }, bytes: jsonBytes(report), resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // Not a microtask: the other attempts of the batch get to make their reports of this turn.
      setTimeout(() => void this.flush(), 0);
    });
  }

  /**
   * Asks the namespace, with the next reports sent, for up to `ahead.max` admitted tasks of
   * `ahead.task_types`, claimed for this invocation (see NamespaceDO.reportAndClaim). Made just
   * before a batch's final reports, it rides on their call, so the slots they free are filled
   * at once. Answers [] when the call fails (what it may have claimed is retried once its
   * lease runs out). `flushClaims` sends it alone if no report comes to carry it.
   */
  claimAhead(ahead: ClaimAhead): Promise<ClaimedAttempt[]> {
    this.demand?.resolve([]);
    return new Promise((resolve) => {
      this.demand = { ahead, resolve };
    });
  }

  /** Sends a pending claim-ahead now if no report has carried it. */
  flushClaims(): void {
    if (this.demand === null || this.scheduled) return;
    this.scheduled = true;
    setTimeout(() => void this.flush(), 0);
  }

  /**
   * Renews an attempt's lease every `periodMs` together with every other attempt on that
   * period, in one call. `onResult` sees each answer; the returned function stops it.
   */
  keepAlive(taskId: string, token: string, periodMs: number, onResult: (result: Result<ReportReceipt>) => void): () => void {
    let group = this.beats.get(periodMs);
    if (!group) {
      const attempts = new Map<string, Beat>();
      const timer = setInterval(() => {
        for (const beat of attempts.values()) this.send(beat.taskId, beat.token, { kind: "heartbeat" }).then(beat.onResult).catch(() => undefined);
      }, periodMs);
      group = { timer, attempts };
      this.beats.set(periodMs, group);
    }
    const key = `${taskId}:${token}`;
    group.attempts.set(key, { taskId, token, onResult });
    const mine = group;
    return () => {
      mine.attempts.delete(key);
      if (mine.attempts.size > 0) return;
      clearInterval(mine.timer);
      if (this.beats.get(periodMs) === mine) this.beats.delete(periodMs);
    };
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = foldLogsIntoCompletions(this.pending.splice(0));
    const demand = this.demand;
    this.demand = null;
    if (batch.length === 0) {
      if (demand) await this.sendChunk([], demand);
      return;
    }
    // Chunks go one after the other, so an attempt's reports are applied in the order it made them.
    let chunk: Pending[] = [];
    let bytes = 0;
    for (const pending of batch) {
      if (chunk.length > 0 && (chunk.length >= MAX_ITEMS || bytes + pending.bytes > MAX_BYTES)) {
        await this.sendChunk(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(pending);
      bytes += pending.bytes;
    }
    // The claim-ahead goes with the last chunk: after every report of this turn has freed its slot.
    if (chunk.length > 0) await this.sendChunk(chunk, demand);
  }

  /**
   * One `reportMany` call. A stub whose call threw may be broken for good, so the next call
   * takes a new one; the reports that repeat harmlessly are sent once more. Log lines are not,
   * since the first call may have stored them: their callers get the error.
   */
  private async sendChunk(chunk: Pending[], demand: ReportBatcher["demand"] = null): Promise<void> {
    let remaining = chunk;
    for (let attempt = 0; ; attempt++) {
      // Claimed ahead only on the first call: a failed one may have claimed already.
      const ahead = attempt === 0 ? demand : null;
      try {
        const items = remaining.map((p) => p.item);
        let results: Result<ReportReceipt>[];
        if (ahead) {
          const answer = await this.stub.reportAndClaim(items, ahead.ahead);
          results = answer.results;
          ahead.resolve(answer.claims);
        } else {
          results = await this.stub.reportMany(items);
        }
        remaining.forEach((p, i) => p.resolve(results[i] ?? fail("internal_error", "no answer for this report")));
        return;
      } catch (err) {
        demand?.resolve([]);
        this.stub = this.stubFor();
        const final = attempt >= 1;
        for (const p of remaining) if (final || p.item.report.kind === "logs") p.reject(err);
        if (final) return;
        remaining = remaining.filter((p) => p.item.report.kind !== "logs");
        if (remaining.length === 0) return;
      }
    }
  }
}

interface Beat {
  taskId: string;
  token: string;
  onResult: (result: Result<ReportReceipt>) => void;
}

/**
 * An attempt's log lines sent in the same turn as its completion, with no other report of that
 * attempt between them, become part of that completion: one item, applied by the object in one
 * step as the two would be in order (the lines, then the outcome), and answered to both callers.
 * A batch of handlers that each log a line and complete thus costs one item per task. Unlike a
 * lone log item, the folded item may be sent again after a failed call: a completion is fenced,
 * so it and its lines apply at most once.
 */
export function foldLogsIntoCompletions(batch: Pending[]): Pending[] {
  const out: (Pending | null)[] = [];
  // Per attempt, the position of its last item when that item is a log report.
  const openLogs = new Map<string, number>();
  for (const pending of batch) {
    const { task_id: taskId, token, report } = pending.item;
    const key = `${taskId}\n${token}`;
    const at = openLogs.get(key);
    openLogs.delete(key);
    const logs = at === undefined ? null : out[at];
    if (report.kind === "complete" && report.lines === undefined && logs && logs.item.report.kind === "logs") {
      out[at!] = null;
      out.push({
        item: { task_id: taskId, token, report: { ...report, lines: logs.item.report.lines } },
        bytes: logs.bytes + pending.bytes,
        resolve: (result) => (logs.resolve(result), pending.resolve(result)),
        reject: (err) => (logs.reject(err), pending.reject(err)),
      });
      continue;
    }
    if (report.kind === "logs") openLogs.set(key, out.length);
    out.push(pending);
  }
  return out.filter((p): p is Pending => p !== null);
}

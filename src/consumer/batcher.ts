import { fail, type Result } from "../errors";
import type { Report, ReportAck } from "../namespace/contract";
import type { NamespaceStub } from "../namespace/stub";
import { jsonBytes } from "../tasks/model";

/** Reports one `reportMany` call carries at most, by count and by approximate JSON bytes. */
const MAX_ITEMS = 200;
const MAX_BYTES = 4 * 1024 * 1024;

interface Pending {
  item: { task_id: string; token: string; report: Report };
  bytes: number;
  resolve: (result: Result<ReportAck>) => void;
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
  private stub: NamespaceStub;
  private readonly beats = new Map<number, { timer: ReturnType<typeof setInterval>; attempts: Map<string, Beat> }>();

  constructor(private readonly stubFor: () => NamespaceStub) {
    this.stub = stubFor();
  }

  /** A function sending one attempt's reports, like `reporter()`. */
  sender(taskId: string, token: string): (report: Report) => Promise<Result<ReportAck>> {
    return (report) => this.send(taskId, token, report);
  }

  send(taskId: string, token: string, report: Report): Promise<Result<ReportAck>> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item: { task_id: taskId, token, report }, bytes: jsonBytes(report), resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // Not a microtask: the other attempts of the batch get to make their reports of this turn.
      setTimeout(() => void this.flush(), 0);
    });
  }

  /**
   * Renews an attempt's lease every `periodMs` together with every other attempt on that
   * period, in one call. `onResult` sees each answer; the returned function stops it.
   */
  keepAlive(taskId: string, token: string, periodMs: number, onResult: (result: Result<ReportAck>) => void): () => void {
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
    const batch = this.pending.splice(0);
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
    if (chunk.length > 0) await this.sendChunk(chunk);
  }

  /**
   * One `reportMany` call. A stub whose call threw may be broken for good, so the next call
   * takes a new one; the reports that repeat harmlessly are sent once more. Log lines are not,
   * since the first call may have stored them: their callers get the error.
   */
  private async sendChunk(chunk: Pending[]): Promise<void> {
    let remaining = chunk;
    for (let attempt = 0; ; attempt++) {
      try {
        const results = await this.stub.reportMany(remaining.map((p) => p.item));
        remaining.forEach((p, i) => p.resolve(results[i] ?? fail("internal_error", "no answer for this report")));
        return;
      } catch (err) {
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
  onResult: (result: Result<ReportAck>) => void;
}

import type { ClaimResult, Report } from "../namespace/contract";
import { type NamespaceStub, reporter } from "../namespace/stub";
import { signedHeaders } from "../webhooks/signing";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import type { ReportBatcher } from "./batcher";
import { config } from "../config";

type Claimed = Extract<ClaimResult, { claimed: true }>;

export const DISPATCH_TIMEOUT_MS = 15_000;

/** A processor's answer up to this long is read to its end; a longer one is cancelled there. */
const READ_ANSWER_BYTES = 16 * 1024;

/**
 * How long an answer's body may take once its status has come. Short: the read only frees the
 * connection for the next dispatch, and a processor that answers 2xx and then trickles its body
 * must not hold one of the invocation's few connections (shared with other namespaces'
 * dispatches in the same queue batch) for the rest of the dispatch timeout.
 */
export const READ_ANSWER_MS = 1000;

/**
 * POSTs a dispatch and answers with the processor's status once it comes, within `timeoutMs`.
 * The body says nothing and the dispatch does not wait for it, so one that stalls after its
 * headers holds nothing up; it is read to its end in the background, which leaves the
 * connection free for the next dispatch (cancelling it closes the connection, and a connect a
 * dispatch showed in the CPU profile, issue 11). A body past READ_ANSWER_BYTES or still coming
 * after READ_ANSWER_MS is cancelled; one whose invocation ends first goes with it.
 */
async function post(url: URL, init: RequestInit, timeoutMs: number): Promise<number> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs / 1000} s`, "TimeoutError")), timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
  void discardAnswer(res.body?.getReader());
  return res.status;
}

/**
 * Reads an answer's body to its end, or cancels it past READ_ANSWER_BYTES or READ_ANSWER_MS. (A
 * function of its own, not a closure in post(): the bundle names every named closure each time
 * it is made.)
 */
async function discardAnswer(reader: ReadableStreamDefaultReader<Uint8Array> | undefined): Promise<void> {
  if (!reader) return;
  const timer = setTimeout(cancelAnswer, READ_ANSWER_MS, reader);
  try {
    for (let bytes = 0; bytes <= READ_ANSWER_BYTES; ) {
      const chunk = await reader.read();
      if (chunk.done) return;
      bytes += chunk.value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The status has come: a body that fails is not worth failing the dispatch for.
  } finally {
    clearTimeout(timer);
  }
}

const ignore = (): void => undefined;

const cancelAnswer = (reader: ReadableStreamDefaultReader<Uint8Array>): void => void reader.cancel().catch(ignore);

/** A failed attempt's report (a module function: the bundle names a closure each time it is made). */
const fail = (code: string, message: string, retryable: boolean): Report => ({ kind: "fail", error: { code, message }, retryable });

/**
 * Hands a claimed attempt to the namespace's processor with a signed POST. A 2xx within 15 s
 * accepts it and the processor reports back through the callbacks; anything else fails the
 * attempt as retryable.
 */
export async function dispatchToProcessor(stubFor: () => NamespaceStub, claim: Claimed, env: Env, batcher?: ReportBatcher): Promise<void> {
  const processor = claim.processor;
  if (!processor) throw new Error("dispatchToProcessor needs a processor");
  const task = claim.task;
  const send = batcher ? batcher.sender(task.task_id, claim.token) : reporter(stubFor, task.task_id, claim.token);
  const verdict = checkOutboundUrl(processor.url, allowPrivateUrls(env));
  if (!verdict.ok) {
    await send(fail("processor_url_refused", `processor url ${verdict.reason}`, false));
    return;
  }
  const base = config(env).publicUrl ?? claim.origin.replace(/\/+$/, "");
  const body = JSON.stringify({
    type: "task.dispatch",
    task,
    attempt: task.attempt,
    lease_expires_at: claim.lease_expires_at,
    timeout_at: claim.timeout_at,
    callback: { url: `${base}/v1/tasks/${task.task_id}/callback`, token: claim.token },
  });
  // One id per attempt: a processor can use it to recognise a repeated dispatch.
  const messageId = `msg_${task.task_id.slice(4)}_${task.attempt}`;
  let outcome: Report | null;
  try {
    const headers = { "content-type": "application/json", "user-agent": "edge-tasks", ...(await signedHeaders([processor.secret], messageId, body)) };
    const status = await post(verdict.url, { method: "POST", headers, body, redirect: "manual" }, DISPATCH_TIMEOUT_MS);
    outcome = status >= 200 && status < 300 ? null : fail("dispatch_failed", `processor answered ${status}`, true);
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${DISPATCH_TIMEOUT_MS / 1000} s` : String(err);
    outcome = fail("dispatch_failed", `processor unreachable: ${reason}`, true);
  }
  if (outcome) await send(outcome);
}

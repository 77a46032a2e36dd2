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
 * dispatches in the same queue batch), nor the invocation itself, for long.
 */
export const READ_ANSWER_MS = 1000;

/**
 * POSTs a dispatch and answers with the processor's status once it comes, within `timeoutMs`,
 * and the read of the answer's body, which says nothing. The status decides the attempt; the
 * body is read to its end so that the connection goes back to the pool for the next dispatch.
 * The dispatch's work waits for that read: a read still going when the consumer invocation
 * ends is cancelled with it and its connection closed, which made every other dispatch open a
 * connection of its own (issue 11). A body past READ_ANSWER_BYTES or still coming after
 * READ_ANSWER_MS is cancelled.
 */
async function post(url: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number; answerRead: Promise<void> }> {
  const controller = new AbortController();
  const timer = setTimeout(abortDispatch, timeoutMs, controller, timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
  return { status: res.status, answerRead: discardAnswer(res, controller) };
}

/**
 * Reads an answer's body to its end, or cancels it past READ_ANSWER_BYTES or READ_ANSWER_MS.
 * An answer that states its length within READ_ANSWER_BYTES (a processor's usual short 202) is
 * read in one call, cancelled by aborting its request: the runtime reads it natively with one
 * wake-up of the isolate, where a reader's chunk and end are two, each with its own buffer
 * (issue 11). Not an encoded one: the runtime decodes it as it reads, so its stated length
 * does not bound what one call would hold. (A function of its own, not a closure in post(): the
 * bundle names every named closure each time it is made.)
 */
async function discardAnswer(res: Response, controller: AbortController): Promise<void> {
  if (!res.body) return;
  const length = res.headers.get("content-length");
  if (length !== null && Number(length) <= READ_ANSWER_BYTES && res.headers.get("content-encoding") === null) {
    const timer = setTimeout(abortAnswer, READ_ANSWER_MS, controller);
    try {
      await res.arrayBuffer();
    } catch {
      // The status has come: a body that fails is not worth failing the dispatch for.
    } finally {
      clearTimeout(timer);
    }
    return;
  }
  const reader = res.body.getReader();
  const timer = setTimeout(cancelAnswer, READ_ANSWER_MS, reader);
  try {
    for (let bytes = 0; bytes <= READ_ANSWER_BYTES; ) {
      const chunk = await reader.read();
      if (chunk.done) return;
      bytes += chunk.value.byteLength;
    }
    await reader.cancel();
  } catch {
    // As above.
  } finally {
    clearTimeout(timer);
  }
}

const ignore = (): void => undefined;

const abortDispatch = (controller: AbortController, timeoutMs: number): void =>
  controller.abort(new DOMException(`no answer within ${timeoutMs / 1000} s`, "TimeoutError"));

/** Aborting the request after its status errors its body, and with it a read in progress. */
const abortAnswer = (controller: AbortController): void => controller.abort();

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
  let answerRead: Promise<void> | null = null;
  try {
    const headers = { "content-type": "application/json", "user-agent": "edge-tasks", ...(await signedHeaders([processor.secret], messageId, body)) };
    const answer = await post(verdict.url, headers, body, DISPATCH_TIMEOUT_MS);
    answerRead = answer.answerRead;
    outcome = answer.status >= 200 && answer.status < 300 ? null : fail("dispatch_failed", `processor answered ${answer.status}`, true);
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${DISPATCH_TIMEOUT_MS / 1000} s` : String(err);
    outcome = fail("dispatch_failed", `processor unreachable: ${reason}`, true);
  }
  if (outcome) await send(outcome);
  // Never throws: a body that fails is not worth failing the dispatch for.
  await answerRead;
}

import type { ClaimResult, Report } from "../namespace/contract";
import { type NamespaceStub, reporter } from "../namespace/stub";
import { signedHeaders } from "../webhooks/signing";
import { withTimeout } from "../webhooks/timeout";
import { allowPrivateUrls, checkOutboundUrl } from "../webhooks/urls";
import type { ReportBatcher } from "./batcher";
import { config } from "../config";

type Claimed = Extract<ClaimResult, { claimed: true }>;

export const DISPATCH_TIMEOUT_MS = 15_000;

/** A processor's answer up to this long is read to its end; a longer one is cancelled there. */
const READ_ANSWER_BYTES = 16 * 1024;
/** How long the body of an answer may keep coming after its status; then it is cancelled. */
const READ_ANSWER_MS = 1000;

/**
 * Lets go of the body of a processor's answer, which says nothing: only its status counts, and
 * the dispatch does not wait for it (a body that stalls after its headers holds nothing up). A
 * short one is read to its end in the background, which leaves the connection free for the next
 * dispatch: cancelling it closes the connection, and opening one a dispatch showed in the CPU
 * profile (issue 11). A body past READ_ANSWER_BYTES, or still coming after READ_ANSWER_MS, is
 * cancelled; one whose invocation ends first goes with it, as a cancelled one would.
 */
function discardAnswer(res: Response): void {
  const reader = res.body?.getReader();
  if (!reader) return;
  const cancel = () => reader.cancel().catch(() => undefined);
  const timer = setTimeout(cancel, READ_ANSWER_MS);
  const read = async (): Promise<void> => {
    for (let bytes = 0; bytes <= READ_ANSWER_BYTES; ) {
      const chunk = await reader.read();
      if (chunk.done) return;
      bytes += chunk.value.byteLength;
    }
    await cancel();
  };
  // The status has come: a body that fails is not worth failing the dispatch for.
  read()
    .catch(() => undefined)
    .finally(() => clearTimeout(timer));
}

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
  const fail = (code: string, message: string, retryable: boolean): Report => ({ kind: "fail", error: { code, message }, retryable });
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
    const response = await withTimeout(DISPATCH_TIMEOUT_MS, async (signal) => {
      const res = await fetch(verdict.url, { method: "POST", headers, body, redirect: "manual", signal });
      discardAnswer(res);
      return res;
    });
    outcome = response.ok ? null : fail("dispatch_failed", `processor answered ${response.status}`, true);
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${DISPATCH_TIMEOUT_MS / 1000} s` : String(err);
    outcome = fail("dispatch_failed", `processor unreachable: ${reason}`, true);
  }
  if (outcome) await send(outcome);
}

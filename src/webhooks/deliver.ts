import { DELIVERY_TIMEOUT_MS, retryAfterMs } from "./schedule";
import { signedHeaders } from "./signing";
import { withTimeout } from "./timeout";
import { checkOutboundUrl } from "./urls";

export interface AttemptOutcome {
  ok: boolean;
  status: number | null;
  error: string | null;
  /** The endpoint answered 410: it is gone and will be disabled. */
  gone: boolean;
  /** A 429 or 503 asked for this wait. */
  retryAfterMs: number | null;
  /** The URL is refused by the rules: retrying cannot help. */
  refused: boolean;
}

/**
 * One signed POST of an event to an endpoint: 15 s timeout, redirects not followed, a 2xx
 * succeeds. Never throws: every failure is an outcome.
 */
export async function attemptDelivery(
  url: string,
  secrets: string[],
  eventId: string,
  body: string,
  allowPrivate: boolean,
  now: number,
): Promise<AttemptOutcome> {
  const verdict = checkOutboundUrl(url, allowPrivate);
  if (!verdict.ok) return { ok: false, status: null, error: `url ${verdict.reason}`, gone: false, retryAfterMs: null, refused: true };
  try {
    const headers = { "content-type": "application/json", "user-agent": "edge-tasks-webhooks", ...(await signedHeaders(secrets, eventId, body)) };
    const response = await withTimeout(DELIVERY_TIMEOUT_MS, async (signal) => {
      const res = await fetch(verdict.url, { method: "POST", headers, body, redirect: "manual", signal });
      await res.body?.cancel();
      return res;
    });
    const status = response.status;
    if (status >= 200 && status < 300) return { ok: true, status, error: null, gone: false, retryAfterMs: null, refused: false };
    const wait = status === 429 || status === 503 ? retryAfterMs(response.headers.get("retry-after"), now) : null;
    const error = status >= 300 && status < 400 ? `redirect ${status} not followed` : `endpoint answered ${status}`;
    return { ok: false, status, error, gone: status === 410, retryAfterMs: wait, refused: false };
  } catch (err) {
    const error = err instanceof Error && err.name === "TimeoutError" ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : `request failed: ${String(err)}`;
    return { ok: false, status: null, error, gone: false, retryAfterMs: null, refused: false };
  }
}

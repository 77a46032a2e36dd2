import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { dispatchToProcessor, READ_ANSWER_MS } from "../src/consumer/processor";
import { registerHandler } from "../src/handlers/registry";
import { fail } from "../src/errors";
import type { ClaimedAttempt, Report } from "../src/namespace/contract";
import type { NamespaceStub } from "../src/namespace/stub";
import { fakeProcessor, PROCESSOR_URL } from "./fake-processor";
import { createTask, eventually, ORIGIN, tenant } from "./helpers";

registerHandler({ type: "answer_probe", run: async () => ({}) });

let processor: ReturnType<typeof fakeProcessor> | null = null;
afterEach(() => processor?.restore());

/**
 * An answer body that records how far it was read and whether it was cancelled: "short" is one
 * chunk then its end, "stall" never comes, "endless" sends 4 KiB chunks for ever, "long" sends 64
 * of them (256 KiB) then ends, "held" is one chunk then its end once `release` is called. Given its request's signal, it errors when the
 * request aborts, as the runtime's body of a fetch does.
 */
function watchedBody(kind: "short" | "stall" | "endless" | "long" | "held", signal?: AbortSignal) {
  const seen = { pulls: 0, ended: false, cancelled: false, aborted: false };
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      signal?.addEventListener("abort", () => {
        seen.aborted = true;
        controller.error(signal.reason);
      });
    },
    async pull(controller) {
      seen.pulls++;
      if (kind === "stall") return new Promise<void>(() => undefined);
      if (kind === "endless" || (kind === "long" && seen.pulls <= 64)) controller.enqueue(new Uint8Array(4096));
      else if (seen.pulls === 1) controller.enqueue(new TextEncoder().encode("accepted"));
      else {
        if (kind === "held") await held;
        seen.ended = true;
        controller.close();
      }
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { seen, body, release };
}

/** "accepted" with its length stated, as a processor's short answer usually comes. */
const statedLength = { status: 202, headers: { "content-length": "8" } };

/** Dispatches an attempt of a task straight to the fake processor, as the consumer does after a claim. */
async function dispatch(): Promise<Report[]> {
  const t = await tenant();
  const task = await createTask(t, { task_type: "answer_probe" });
  const claim: ClaimedAttempt = {
    claimed: true,
    task,
    token: "tok",
    lease_expires_at: new Date().toISOString(),
    timeout_at: new Date().toISOString(),
    processor: { url: PROCESSOR_URL, secret: "whsec_c2VjcmV0" },
    origin: ORIGIN,
    checkpoint: null,
  };
  // An accepted dispatch reports nothing; a refused one would report its failure here.
  const reports: Report[] = [];
  const stub = { report: async (_taskId: string, _token: string, report: Report) => (reports.push(report), fail("conflict", "recorded only")) };
  await dispatchToProcessor(() => stub as unknown as NamespaceStub, claim, env);
  return reports;
}

describe("a processor's answer", () => {
  it("is read to its end, not cancelled, so its connection can carry the next dispatch", async () => {
    const { seen, body } = watchedBody("short");
    processor = fakeProcessor(() => new Response(body, { status: 202 }));
    expect(await dispatch()).toEqual([]);
    await eventually(async () => (seen.ended ? true : undefined), 5_000, "the answer read to its end");
    expect(seen.cancelled).toBe(false);
  });

  it("accepts the attempt by its status while its body has not come, and cancels a body that stalls soon after", async () => {
    const { seen, body } = watchedBody("stall");
    processor = fakeProcessor(() => new Response(body, { status: 202 }));
    expect(await dispatch()).toEqual([]);
    expect(seen.ended).toBe(false);
    // Not the dispatch's 15 s: a processor that trickles its answer must not hold a connection
    // the other dispatches of the batch (other namespaces' too) are waiting for.
    await eventually(async () => (seen.cancelled ? true : undefined), READ_ANSWER_MS + 3_000, "the stalled answer cancelled");
  });

  it("cancels an answer past its first 16 KiB", async () => {
    const { seen, body } = watchedBody("endless");
    processor = fakeProcessor(() => new Response(body, { status: 202 }));
    expect(await dispatch()).toEqual([]);
    await eventually(async () => (seen.cancelled ? true : undefined), READ_ANSWER_MS + 3_000, "the long answer cancelled");
    expect(seen.pulls).toBeLessThan(20);
  });

  it("ends the dispatch's work only once its answer is read, so the invocation does not close the connection first", async () => {
    const { seen, body, release } = watchedBody("held");
    processor = fakeProcessor(() => new Response(body, { status: 202 }));
    let done = false;
    const dispatched = dispatch().then((reports) => ((done = true), reports));
    await eventually(async () => (seen.pulls >= 2 ? true : undefined), 5_000, "the answer's end asked for");
    expect(done).toBe(false);
    release();
    expect(await dispatched).toEqual([]);
    expect(seen.ended).toBe(true);
  });

  it("reads an answer of stated length to its end", async () => {
    const { seen, body } = watchedBody("short");
    processor = fakeProcessor(() => new Response(body, statedLength));
    expect(await dispatch()).toEqual([]);
    expect(seen.ended).toBe(true);
    expect(seen.cancelled || seen.aborted).toBe(false);
  });

  it("aborts the request of an answer of stated length whose body stalls", async () => {
    const started = Date.now();
    let watched: ReturnType<typeof watchedBody> | null = null;
    processor = fakeProcessor((d) => {
      watched = watchedBody("stall", d.signal);
      return new Response(watched.body, statedLength);
    });
    expect(await dispatch()).toEqual([]);
    expect(watched!.seen.aborted).toBe(true);
    expect(watched!.seen.ended).toBe(false);
    // Not the dispatch's 15 s (see the stalled answer above).
    expect(Date.now() - started).toBeLessThan(READ_ANSWER_MS + 3_000);
  });

  it("cancels an encoded answer past its first 16 KiB, whatever length it states", async () => {
    // The runtime decodes a gzip answer as it is read: its stated length bounds the bytes on
    // the wire, not what a read of the whole body would hold.
    const { seen, body } = watchedBody("long");
    processor = fakeProcessor(() => new Response(body, { status: 202, headers: { "content-length": "8", "content-encoding": "gzip" } }));
    expect(await dispatch()).toEqual([]);
    expect(seen.cancelled).toBe(true);
    expect(seen.pulls).toBeLessThan(20);
  });
});

import { route } from "./fake-fetch";

export const PROCESSOR_URL = "https://processor.test/run";

export interface Dispatch {
  headers: Headers;
  raw: string;
  /** The request's signal: the real runtime errors an answer's body when it aborts. */
  signal: AbortSignal;
  body: {
    type: string;
    task: { task_id: string; attempt: number; status: string; started_at: string | null };
    attempt: number;
    lease_expires_at: string;
    timeout_at: string;
    callback: { url: string; token: string };
  };
}

/**
 * Stands in for an external processor: outbound requests to processor.test are recorded and
 * answered by `respond`; every other request goes out as usual.
 */
export function fakeProcessor(respond: (d: Dispatch) => Response | Promise<Response> = () => new Response("ok")) {
  const dispatched: Dispatch[] = [];
  const restore = route("https://processor.test/", async (request) => {
    const raw = await request.text();
    const dispatch: Dispatch = { headers: request.headers, raw, signal: request.signal, body: JSON.parse(raw) as Dispatch["body"] };
    dispatched.push(dispatch);
    return respond(dispatch);
  });
  return {
    dispatched,
    /** The latest dispatch of a task. */
    last(taskId: string): Dispatch | undefined {
      return dispatched.filter((d) => d.body.task.task_id === taskId).at(-1);
    },
    restore,
  };
}

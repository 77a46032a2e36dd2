import { route } from "./fake-fetch";

export const HOOK_BASE = "https://hooks.test/";

export interface Received {
  endpoint: string;
  headers: Headers;
  raw: string;
  body: { id: string; type: string; created_at: string; namespace_id: string; data: { task?: { task_id: string; status: string; progress: { percent: number | null } } } };
  status: number;
  receivedAt: number;
}

/**
 * Webhook endpoints under https://hooks.test/<name>: every request is recorded and answered by
 * `respond` (a status, or a Response, or a promise of one).
 */
export function fakeEndpoints(respond: (endpoint: string, body: Received["body"], init: RequestInit | undefined) => Response | Promise<Response> = () => new Response("ok")) {
  const received: Received[] = [];
  const restore = route(HOOK_BASE, async (request, init) => {
    const raw = await request.text();
    const body = JSON.parse(raw) as Received["body"];
    const endpoint = request.url.slice(HOOK_BASE.length);
    const response = await respond(endpoint, body, init);
    received.push({ endpoint, headers: request.headers, raw, body, status: response.status, receivedAt: Date.now() });
    return response;
  });
  return {
    received,
    /** What the endpoint of this name received (other tests' late retries may reach others). */
    at: (endpoint: string) => received.filter((r) => r.endpoint === endpoint),
    restore,
  };
}

/** A deterministic PRNG, so a "random" test is the same on every run: the service's own. */
export { prng as seeded } from "../src/embed/kmeans";

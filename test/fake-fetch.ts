import { type MockInstance, vi } from "vitest";

type Handler = (request: Request, init: RequestInit | undefined) => Promise<Response>;

const routes = new Map<string, Handler>();
let spy: MockInstance<typeof fetch> | null = null;
let original: typeof fetch | null = null;

/**
 * Answers outbound requests whose URL starts with `prefix` with `handler`, through one spy on
 * fetch shared by every fake in the isolate (two spies on one function would replace each
 * other). Returns a function that removes the route.
 */
export function route(prefix: string, handler: Handler): () => void {
  if (!spy) {
    original = globalThis.fetch;
    spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      for (const [p, h] of routes) if (request.url.startsWith(p)) return h(request, init);
      if (!original) throw new Error("fetch spy without an original");
      return original(input, init);
    });
  }
  routes.set(prefix, handler);
  return () => {
    routes.delete(prefix);
    if (routes.size === 0 && spy) {
      spy.mockRestore();
      spy = null;
    }
  };
}

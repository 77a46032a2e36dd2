// The environment the benches start `wrangler dev` in.
//
// wrangler 4 turns on local observability by default: it records a span for every SQL
// statement a Durable Object runs and hands the spans to a tail worker on the same workerd
// thread, which took a fifth to a quarter of that thread during ingest (perf, issue 11). A
// deployed Worker's traces are not collected on its own thread, so the benches switch the
// collector off; `X_LOCAL_OBSERVABILITY=true npm run bench` measures with it, as sessions
// before 2026-12-02 did.

/** Whether the local trace collector runs in the benches' `wrangler dev`. */
export const localObservability = (process.env.X_LOCAL_OBSERVABILITY ?? "false").toLowerCase() === "true";

/** process.env with the collector setting the benches use. */
export function devEnv() {
  return { ...process.env, X_LOCAL_OBSERVABILITY: localObservability ? "true" : "false" };
}

/** One line for a bench's output: how its `wrangler dev` runs. */
export const devEnvLine = () => `wrangler dev's local trace collector: ${localObservability ? "on (X_LOCAL_OBSERVABILITY=true)" : "off (set X_LOCAL_OBSERVABILITY=true to measure with it)"}`;

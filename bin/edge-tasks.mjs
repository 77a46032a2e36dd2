#!/usr/bin/env node
// The `edge-tasks` command: wires the process to the CLI's main(), built into dist/ by `npm run build`.
let cli;
try {
  cli = await import("../dist/cli.mjs");
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/cli.mjs")) throw error;
  process.stderr.write("edge-tasks: the CLI is not built yet; run `npm run build` (npm ci does it too)\n");
  process.exit(2);
}

const controller = new AbortController();
process.once("SIGINT", () => controller.abort(new Error("interrupted")));
process.exitCode = await cli.main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  fetch: globalThis.fetch,
  signal: controller.signal,
});

#!/usr/bin/env node
// `npm start [-- <wrangler dev options>]`: applies the local D1 migrations quietly (their output is
// shown only if they fail), then runs `wrangler dev` with the options given, and once the service
// answers prints what a user needs: its URL, the admin token, and how to run the cron locally.
//
// wrangler dev runs at --log-level warn unless the options say otherwise (`-- --log-level info`
// shows every request). Without --port it serves 8787 and refuses to start if 8787 is taken,
// instead of wrangler's silent move to another port (8788 is the example processor's).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const bin = path.join(root, "node_modules", ".bin");
const wrangler = path.join(bin, "wrangler");
// wrangler needs Node.js 22, which the `node` devDependency puts in node_modules/.bin: first on
// PATH, as under `npm start`, also when this script is run with a system Node.js 20.
const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` };
const DEFAULT_PORT = 8787;
const HEALTH_DEADLINE_MS = 120_000;

/** The value of `--name value` or `--name=value` (also a short alias), or undefined. */
function optionValue(args, ...names) {
  for (let i = 0; i < args.length; i++) {
    for (const name of names) {
      if (args[i] === name && i + 1 < args.length) return args[i + 1];
      if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
    }
  }
  return undefined;
}

/** Every `NAME:value` given to `--var` (an array option: `--var A:1 B:2`, `--var=A:1`). */
function varOptions(args) {
  const vars = new Map();
  const add = (pair) => {
    const colon = pair.indexOf(":");
    if (colon > 0) vars.set(pair.slice(0, colon), pair.slice(colon + 1));
  };
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith("--var=")) add(args[i].slice("--var=".length));
    if (args[i] !== "--var") continue;
    while (i + 1 < args.length && !args[i + 1].startsWith("-")) add(args[++i]);
  }
  return vars;
}

/** ADMIN_TOKEN as wrangler dev will see it, and where it comes from. */
function adminToken(args) {
  const given = varOptions(args).get("ADMIN_TOKEN");
  if (given !== undefined) return { token: given, source: "--var" };
  const env = optionValue(args, "--env", "-e");
  for (const file of env ? [`.dev.vars.${env}`, ".dev.vars"] : [".dev.vars"]) {
    const full = path.join(root, file);
    if (!existsSync(full)) continue;
    for (const line of readFileSync(full, "utf8").split("\n")) {
      const match = /^\s*ADMIN_TOKEN\s*=\s*(.*?)\s*$/.exec(line);
      if (match) return { token: match[1].replace(/^(["'])(.*)\1$/, "$2"), source: file };
    }
    // wrangler reads only the first .dev.vars file that exists.
    break;
  }
  return { token: undefined, source: undefined };
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

/** Runs wrangler with its output captured; resolves to {code, output}. */
function runCaptured(args) {
  return new Promise((resolve) => {
    const child = spawn(wrangler, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", (error) => resolve({ code: 1, output: `${output}${error.message}\n` }));
    child.once("close", (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

async function waitForHealth(url, child) {
  const deadline = Date.now() + HEALTH_DEADLINE_MS;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return true;
    } catch {
      // not serving yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

async function main() {
  const given = process.argv.slice(2);
  const devArgs = ["dev", ...given];
  let port = Number(optionValue(given, "--port"));
  if (!optionValue(given, "--port")) {
    port = DEFAULT_PORT;
    if (!(await portIsFree(port))) {
      process.stderr.write(`npm start: port ${port} is in use (another \`npm start\`?); choose another with \`npm start -- --port 9000\`.\n`);
      return 1;
    }
    devArgs.push("--port", String(port));
  }
  if (!optionValue(given, "--log-level") && !process.env.WRANGLER_LOG) devArgs.push("--log-level", "warn");

  // The migrations go to the same local state and environment that wrangler dev will use.
  const migrateArgs = ["d1", "migrations", "apply", "DB", "--local"];
  for (const name of ["--persist-to", "--env", "--config"]) {
    const value = optionValue(given, name, ...(name === "--env" ? ["-e"] : name === "--config" ? ["-c"] : []));
    if (value !== undefined) migrateArgs.push(name, value);
  }
  const migrated = await runCaptured(migrateArgs);
  if (migrated.code !== 0) {
    process.stderr.write(migrated.output);
    process.stderr.write(`npm start: applying the local D1 migrations failed (wrangler ${migrateArgs.join(" ")}).\n`);
    return migrated.code;
  }

  const child = spawn(wrangler, devArgs, { cwd: root, env, stdio: "inherit" });
  // Ctrl-C reaches wrangler through the terminal; a SIGTERM sent to this script alone is passed on.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      if (child.exitCode === null) child.kill(signal);
    });
  }
  const exited = new Promise((resolve) => {
    child.once("error", (error) => {
      process.stderr.write(`npm start: could not run wrangler: ${error.message}\n`);
      resolve(1);
    });
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });

  const ip = optionValue(given, "--ip");
  const host = !ip || ["0.0.0.0", "::", "*", "localhost"].includes(ip) ? "127.0.0.1" : ip.includes(":") ? `[${ip}]` : ip;
  const url = `${optionValue(given, "--local-protocol") === "https" ? "https" : "http"}://${host}:${port}`;
  if (await waitForHealth(url, child)) {
    const { token, source } = adminToken(given);
    const tokenLine = token === undefined ? "not set: pass -- --var ADMIN_TOKEN:<token> or put it in .dev.vars" : `${token}  (from ${source})`;
    process.stdout.write(
      `\nedge-tasks   ${url}  (dashboard at /, API reference at /docs; Ctrl-C stops it)\n` +
        `admin token  ${tokenLine}\n` +
        `cron         does not run locally; run it once with: curl ${url}/cdn-cgi/local/scheduled` +
        (given.includes("--test-scheduled") ? ` (or ${url}/__scheduled)\n\n` : "\n\n"),
    );
  } else if (child.exitCode === null && child.signalCode === null) {
    process.stderr.write(`npm start: ${url}/health did not answer within ${HEALTH_DEADLINE_MS / 1000} s; wrangler is still running.\n`);
  }
  return exited;
}

process.exitCode = await main();

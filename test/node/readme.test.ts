import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./dev-server";

const root = path.resolve(import.meta.dirname, "../..");
const readme = readFileSync(path.join(root, "README.md"), "utf8");
// No telemetry, no update check, no colours: the test machine has no network.
// WRANGLER_LOG stays unset: npm start chooses wrangler's log level itself.
const { WRANGLER_LOG: _unset, ...inherited } = process.env;
const quietEnv = { ...inherited, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };
/** The sections whose `sh` blocks make one session, in README order. */
const SESSION_SECTIONS = ["## A session with curl", "## Following tasks", "### The data plane and the built-in task types"];
const ADMIN_TOKEN = "readme-admin-token";

/** The `sh` code blocks of each heading, by the heading's line. */
function shellBlocks(markdown: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  let heading = "";
  let fence: { lang: string; lines: string[] } | null = null;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) {
      if (fence === null) {
        fence = { lang: line.slice(3).trim(), lines: [] };
      } else {
        if (fence.lang === "sh") blocks.set(heading, [...(blocks.get(heading) ?? []), fence.lines.join("\n")]);
        fence = null;
      }
    } else if (fence !== null) {
      fence.lines.push(line);
    } else if (line.startsWith("#")) {
      heading = line.trim();
    }
  }
  return blocks;
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A process in its own group (so that stopping it stops wrangler and workerd under it), with its output kept. */
function launch(command: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<Exit>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function stopGroup(child: ChildProcess | undefined, exited: Promise<Exit> | undefined): Promise<void> {
  const pid = child?.pid;
  if (!child || pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const stopped = await Promise.race([exited?.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
  if (!stopped) signal("SIGKILL");
}

/** Resolves when `text()` contains `marker`; rejects when the process ends first or after `ms`. */
async function waitFor(text: () => string, marker: string, exited: Promise<Exit>, ms: number): Promise<void> {
  let ended = false;
  void exited.then(() => (ended = true));
  const deadline = Date.now() + ms;
  while (!text().includes(marker)) {
    if (ended) throw new Error(`the process ended before printing ${JSON.stringify(marker)}:\n${text()}`);
    if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(marker)} within ${ms / 1000} s:\n${text()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("npm start and the README's examples", () => {
  let state = "";
  let url = "";
  let service: ReturnType<typeof launch> | undefined;

  beforeAll(async () => {
    state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-readme-"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // What "A session with curl" says to run, plus a free port, a private state and a token of our own.
    service = launch(
      "npm",
      [
        "start", "--", "--var", "ALLOW_PRIVATE_URLS:true", `ADMIN_TOKEN:${ADMIN_TOKEN}`,
        "--port", String(port), "--inspector-port", String(await freePort()), "--persist-to", state,
      ],
      quietEnv,
    );
    await waitFor(() => service?.output().stdout ?? "", "cron ", service.exited, 150_000);
  }, 180_000);

  afterAll(async () => {
    await stopGroup(service?.child, service?.exited);
    if (state) rmSync(state, { recursive: true, force: true });
  }, 30_000);

  it("npm start prints the URL, the admin token and how to run the cron, passes its arguments to wrangler dev, and no migration tables", async () => {
    const { stdout, stderr } = service?.output() ?? { stdout: "", stderr: "" };
    expect(stdout).toContain(`edge-tasks   ${url}`);
    expect(stdout).toContain(`admin token  ${ADMIN_TOKEN}  (from --var)`);
    const cron = /run it once with: (curl \S+)/.exec(stdout)?.[1];
    expect(cron).toBe(`curl ${url}/cdn-cgi/local/scheduled`);
    for (const noise of ["Migrations to be applied", "0001_init.sql", "commands executed successfully", "Your Worker has access to the following bindings"]) {
      expect(stdout + stderr).not.toContain(noise);
    }
    // --var reached wrangler dev: the admin API takes the token given there.
    const namespaces = await fetch(`${url}/v1/namespaces`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(namespaces.status).toBe(200);
    // The banner's cron command runs the scheduled handler (miniflare answers 500 if it throws).
    const run = launch("bash", ["-c", `${cron} --fail-with-body -sS`], quietEnv);
    const result = await run.exited;
    expect(result, result.stderr).toMatchObject({ code: 0, stdout: "ok" });
  });

  it("runs the curl session, Following tasks and the data-plane example as written, with the processor, and no HTTP error", async () => {
    const blocks = shellBlocks(readme);
    const sections = SESSION_SECTIONS.map((heading) => blocks.get(heading) ?? []);
    expect(sections.map((s) => s.length)).toEqual([2, 1, 1]);
    let script = sections.flat().join("\n");
    // The values the README tells the reader to use, replaced with this service's.
    for (const [written, actual] of [["API=http://127.0.0.1:8787", `API=${url}`], ["ADMIN=dev-admin-token", `ADMIN=${ADMIN_TOKEN}`]] as const) {
      expect(script).toContain(written);
      script = script.replace(written, actual);
    }
    const processorPort = await freePort();
    expect(script).toContain("http://127.0.0.1:8788/run");
    script = script.replaceAll("127.0.0.1:8788", `127.0.0.1:${processorPort}`);
    expect(readme).toContain("`node examples/processor.mjs`, listening on 127.0.0.1:8788");

    // Any HTTP error fails the command (curl exits 22); a stream that the README bounds with
    // --max-time ends by design with curl's timeout, exit code 28. The first failing command ends the run.
    const prelude = [
      "set -Eeuo pipefail",
      'curl() { local rc=0; command curl --fail-with-body "$@" || rc=$?; if [ "$rc" -eq 28 ] && [[ " $* " == *" --max-time "* ]]; then return 0; fi; return "$rc"; }',
      `trap 'echo "README command failed ($?): $BASH_COMMAND" >&2' ERR`,
    ].join("\n");
    const processor = launch(process.execPath, ["examples/processor.mjs"], { ...quietEnv, PROCESSOR_PORT: String(processorPort) });
    try {
      await waitFor(() => processor.output().stdout, "processor listening", processor.exited, 20_000);
      const session = launch("bash", ["-c", `${prelude}\n${script}`], quietEnv);
      const timer = setTimeout(() => void stopGroup(session.child, session.exited), 150_000);
      const result = await session.exited;
      clearTimeout(timer);
      expect(result.code, `${result.stderr}\n--- stdout (end) ---\n${result.stdout.slice(-3000)}`).toBe(0);
      // The task went to the processor, the streams replayed, and the clustering wrote cluster ids.
      expect(processor.output().stdout).toMatch(/tsk_\w+ attempt 1: complete → /);
      expect(result.stdout).toContain("event: task.created");
      expect(result.stdout).toMatch(/^event: task\.completed$/m);
      expect(result.stdout).toMatch(/"cluster_id":[0-2]\b/);
      expect(result.stdout).not.toContain('"cluster_id":null');
      expect(result.stdout).not.toContain('"status":"failed"');
    } finally {
      await stopGroup(processor.child, processor.exited);
    }
  }, 180_000);

  it("npm start without --port refuses a taken 8787 instead of letting wrangler move to 8788", async () => {
    // Hold 8787 unless something else already does: either way it is taken.
    const holder: Server = createServer();
    const held = await new Promise<boolean>((resolve) => {
      holder.once("error", () => resolve(false));
      holder.listen(8787, "127.0.0.1", () => resolve(true));
    });
    try {
      const start = launch("npm", ["start", "--", "--persist-to", state], quietEnv);
      const timer = setTimeout(() => void stopGroup(start.child, start.exited), 30_000);
      const result = await start.exited;
      clearTimeout(timer);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("port 8787 is in use");
      expect(result.stderr).toContain("npm start -- --port 9000");
    } finally {
      if (held) await new Promise((resolve) => holder.close(resolve));
    }
  });
});

interface Separation {
  separated: boolean;
  line: string;
}

describe("the demo's check of its clusters", () => {
  const clusters = (entries: [number, [string, number][]][]) => new Map(entries.map(([id, topics]) => [id, new Map(topics)]));

  it("passes when each topic leads its own cluster, and names the topics when two share one", async () => {
    const demo = (await import(pathToFileURL(path.join(root, "scripts/demo.mjs")).href)) as { topicSeparation: (byCluster: Map<number, Map<string, number>>) => Separation };
    const good = demo.topicSeparation(clusters([[0, [["football", 60]]], [1, [["cooking", 59], ["football", 1]]], [2, [["finance", 60]]]]));
    expect(good.separated).toBe(true);
    expect(good.line).toContain("all 3 topics separated");
    expect(good.line).toContain("1 of 180 texts elsewhere");
    // The fixed seed's failure: two topics in one cluster, another topic split over two.
    const merged = demo.topicSeparation(clusters([[0, [["finance", 25]]], [1, [["gardening", 60], ["football", 59]]], [2, [["finance", 35]]], [3, [["football", 1]]]]));
    expect(merged.separated).toBe(false);
    expect(merged.line).toContain("finance leads clusters 0 and 2");
    // A topic that is nowhere a majority fails even if no other topic is split.
    const swallowed = demo.topicSeparation(clusters([[0, [["cooking", 60], ["astronomy", 40]]], [1, [["football", 60]]]]));
    expect(swallowed).toMatchObject({ separated: false });
    expect(swallowed.line).toContain("astronomy leads no cluster");
  });
});

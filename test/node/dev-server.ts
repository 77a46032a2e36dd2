import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const root = path.resolve(import.meta.dirname, "../..");
const wrangler = path.join(root, "node_modules/.bin/wrangler");
// No telemetry, no update check, no interactive session: the test machine has no network.
const quietEnv = { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: "warn", NO_COLOR: "1" };

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export interface DevServer {
  readonly url: string;
  /** What wrangler printed, for a failing test's message. */
  output(): string;
  /** Stops the service and starts it again on the same port and state: every Durable Object restarts. */
  restart(): Promise<void>;
  /** Stops the service; `start()` brings it back. */
  stop(): Promise<void>;
  /**
   * Kills wrangler's whole process group with SIGKILL, as a crash or power loss would: nothing
   * gets to finish or flush. `start()` brings it back on the same state.
   */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops the service and removes its state. */
  dispose(): Promise<void>;
}

/**
 * The real service under `wrangler dev` on a free port, with its own state directory
 * (D1 migrated first), ALLOW_PRIVATE_URLS on and the given ADMIN_TOKEN.
 */
export async function startDevServer(options: { adminToken: string; vars?: Record<string, string> }): Promise<DevServer> {
  const state = mkdtempSync(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "edge-tasks-dev-"));
  await promisify(execFile)(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: root, env: quietEnv });
  const port = await freePort();
  const inspectorPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = "";
  let child: ChildProcess | null = null;

  const start = async (): Promise<void> => {
    const proc = spawn(
      wrangler,
      [
        "dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort),
        "--persist-to", state, "--log-level", "warn", "--show-interactive-dev-session=false",
        "--var", `ADMIN_TOKEN:${options.adminToken}`, "--var", "ALLOW_PRIVATE_URLS:true",
        ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
      ],
      // Its own process group, so that stopping it also stops workerd under it.
      { cwd: root, env: quietEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    child = proc;
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString("utf8")).slice(-20_000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`wrangler dev exited with ${proc.exitCode}:\n${log}`);
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`wrangler dev did not serve ${url}/health within 90 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  /** Stops the process group: SIGTERM first unless `hard`, SIGKILL if it lingers (or at once when `hard`). */
  const halt = async (hard: boolean): Promise<void> => {
    const proc = child;
    child = null;
    const pid = proc?.pid;
    if (!proc || proc.exitCode !== null || pid === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // already gone
      }
    };
    if (!hard) signal("SIGTERM");
    const killed = !hard && (await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]));
    if (!killed) {
      signal("SIGKILL");
      await exited;
    }
    // The port must be free before a restart binds it again.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = (): Promise<void> => halt(false);

  try {
    await start();
  } catch (err) {
    await stop();
    rmSync(state, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    output: () => log,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
    kill: () => halt(true),
    start,
    dispose: async () => {
      await stop();
      rmSync(state, { recursive: true, force: true });
    },
  };
}

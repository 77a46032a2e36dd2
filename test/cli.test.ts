import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { FetchLike } from "../src/client";
import { main } from "../src/cli";
import { registerHandler, TaskFailure } from "../src/handlers/registry";
import type { Task } from "../src/tasks/model";
import { createTask, eventually, getTask, ORIGIN, sleep, tenant, type Tenant, waitForStatus } from "./helpers";

registerHandler({
  type: "cli_steps",
  run: async (ctx) => {
    for (let step = 1; step <= 3; step++) {
      await sleep(30);
      await ctx.progress({ percent: step * 30, message: `step ${step}`, processed: step, total: 3 });
      await ctx.log(`working on step ${step}`, step === 2 ? "warn" : "info");
    }
    return { steps: 3 };
  },
});
registerHandler({
  type: "cli_fatal",
  run: async () => {
    throw new TaskFailure("corrupt_input", "the input is corrupt", false);
  },
});
const released = new Set<string>();
registerHandler({
  type: "cli_held",
  run: async (ctx) => {
    const key = String(ctx.task.inputs.key);
    while (!released.has(key)) {
      await sleep(100);
      await ctx.progress({ percent: 5, message: "held" });
    }
    return {};
  },
});

const service: FetchLike = (input, init) => exports.default.fetch(new Request(input, init));

class Capture {
  text = "";
  constructor(
    readonly isTTY = false,
    readonly columns = 120,
  ) {}
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
  get lines() {
    return this.text.split("\n").filter((l) => l !== "");
  }
}

interface Run {
  code: number;
  stdout: Capture;
  stderr: Capture;
}

/** Runs the CLI against the real service with the tenant's key in the environment. */
async function run(t: Tenant | null, argv: string[], options: { tty?: boolean; env?: Record<string, string>; signal?: AbortSignal; fetch?: FetchLike } = {}): Promise<Run> {
  const stdout = new Capture(options.tty ?? false);
  const stderr = new Capture();
  const env = { EDGE_TASKS_URL: ORIGIN, ...(t ? { EDGE_TASKS_API_KEY: t.key } : {}), ...options.env };
  const code = await main(argv, { env, stdout, stderr, fetch: options.fetch ?? service, signal: options.signal });
  return { code, stdout, stderr };
}

const parse = <T>(text: string): T => JSON.parse(text) as T;

describe("edge-tasks list", () => {
  it("prints a table, pages with --limit and --cursor, filters, and --json; --all walks every page", async () => {
    const t = await tenant();
    const a = await createTask(t, { task_type: "cli_steps" });
    const b = await createTask(t, { task_type: "cli_fatal" });
    const c = await createTask(t, { task_type: "cli_steps" });
    await waitForStatus(t, b.task_id, "failed");
    await waitForStatus(t, a.task_id, "completed");
    await waitForStatus(t, c.task_id, "completed");

    const table = await run(t, ["list"]);
    expect(table.code).toBe(0);
    expect(table.stdout.lines[0]).toMatch(/^STATUS\s+TASK\s+TYPE\s+PROGRESS\s+CREATED$/);
    expect(table.stdout.lines).toHaveLength(4);
    // Newest first.
    expect(table.stdout.lines[1]).toContain(c.task_id);
    expect(table.stdout.text).toContain(`❌ failed`);
    expect(table.stdout.text).toContain(`✅ completed`);

    const first = await run(t, ["list", "--limit", "2", "--json"]);
    const page1 = parse<Task[]>(first.stdout.text);
    expect(page1.map((x) => x.task_id)).toEqual([c.task_id, b.task_id]);
    const more = /--cursor (\S+)/.exec(first.stderr.text)?.[1];
    expect(more).toBeTruthy();
    const second = await run(t, ["list", "--limit=2", "--cursor", more ?? "", "--json"]);
    expect(parse<Task[]>(second.stdout.text).map((x) => x.task_id)).toEqual([a.task_id]);
    expect(second.stderr.text).not.toContain("more:");

    const all = await run(t, ["list", "--limit", "1", "--all", "--json"]);
    expect(parse<Task[]>(all.stdout.text)).toHaveLength(3);
    const failed = await run(t, ["list", "--status", "failed", "--json"]);
    expect(parse<Task[]>(failed.stdout.text).map((x) => x.task_id)).toEqual([b.task_id]);
    const typed = await run(t, ["list", "--type", "cli_steps", "--status", "COMPLETED", "--json"]);
    expect(parse<Task[]>(typed.stdout.text)).toHaveLength(2);

    const empty = await run(await tenant(), ["list"]);
    expect(empty.code).toBe(0);
    expect(empty.stderr.text).toContain("no tasks");
  });

  it("explains a bad filter from the API's 422 and exits 1", async () => {
    const t = await tenant();
    const bad = await run(t, ["list", "--status", "exploded"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.text).toContain("validation_error (HTTP 422)");
    expect(bad.stderr.text).toContain('unknown status "exploded"');
  });
});

describe("edge-tasks get", () => {
  it("shows a task for people and as JSON, and a missing one as a clear 404", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_fatal", inputs: { file: "x.csv" } });
    await waitForStatus(t, task.task_id, "failed");
    const human = await run(t, ["get", task.task_id]);
    expect(human.code).toBe(0);
    expect(human.stdout.text).toContain(`${task.task_id}  ❌ failed`);
    expect(human.stdout.text).toMatch(/error\s+corrupt_input: the input is corrupt/);
    expect(human.stdout.text).toContain('{"file":"x.csv"}');
    const json = await run(t, ["get", task.task_id, "--json"]);
    expect(parse<Task>(json.stdout.text)).toEqual(await getTask(t, task.task_id));
    const missing = await run(t, ["get", "tsk_nothere00000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.text).toContain("not_found (HTTP 404)");
    expect(missing.stdout.text).toBe("");
  });

  it("--wait long-polls: it answers when the task changes, not before", async () => {
    const t = await tenant({ max_concurrent_tasks: 1 });
    const blocker = await createTask(t, { task_type: "cli_held", inputs: { key: "get-wait" } });
    await waitForStatus(t, blocker.task_id, "processing");
    const waiting = await createTask(t, { task_type: "cli_steps" });
    expect(waiting.status).toBe("created");
    let answered = false;
    const result = run(t, ["get", waiting.task_id, "--wait", "20", "--json"]).then((r) => {
      answered = true;
      return r;
    });
    await sleep(500);
    expect(answered).toBe(false);
    released.add("get-wait");
    const after = parse<Task>((await result).stdout.text);
    expect(after.status).not.toBe("created");
    await waitForStatus(t, waiting.task_id, "completed");
  });
});

describe("edge-tasks watch", () => {
  it("draws a bar per task until each ends and exits 1 when one failed", async () => {
    const t = await tenant();
    const good = await createTask(t, { task_type: "cli_steps" });
    const bad = await createTask(t, { task_type: "cli_fatal" });
    const result = await run(t, ["watch", good.task_id, bad.task_id]);
    expect(result.code).toBe(1);
    const goodLines = result.stdout.lines.filter((l) => l.includes(good.task_id));
    expect(goodLines.at(-1)).toMatch(/^✅ █{24} 100% completed/);
    expect(result.stdout.lines.filter((l) => l.includes(bad.task_id)).at(-1)).toMatch(/^❌ .* failed .*corrupt_input: the input is corrupt/);
    expect(result.stderr.text).toContain(`task ${bad.task_id} failed: corrupt_input`);
  });

  it("exits 0 when every task completed, and redraws in place on a terminal", async () => {
    const t = await tenant();
    const a = await createTask(t, { task_type: "cli_steps" });
    const b = await createTask(t, { task_type: "cli_steps" });
    const result = await run(t, ["watch", a.task_id, b.task_id], { tty: true });
    expect(result.code).toBe(0);
    expect(result.stderr.text).toBe("");
    // Redraws move the cursor up over the two bars and clear each line.
    expect(result.stdout.text).toContain("\x1b[2F");
    expect(result.stdout.text).toContain("\x1b[2K");
    const frames = result.stdout.text.split("\x1b[2F");
    const last = frames.at(-1) ?? "";
    expect(last).toContain(`✅ ${"█".repeat(24)} 100% completed  ${a.task_id}`);
    expect(last).toContain(`✅ ${"█".repeat(24)} 100% completed  ${b.task_id}`);
    // Bars moved on the way.
    expect(result.stdout.text).toMatch(/ {2}30% processing/);
  });

  it("--json prints one task state a line; --timeout leaves a task running and exits 1", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_held", inputs: { key: "watch-timeout" } });
    const result = await run(t, ["watch", task.task_id, "--timeout", "0.5", "--json"]);
    expect(result.code).toBe(1);
    const states = result.stdout.lines.map((l) => parse<Task>(l));
    expect(states.length).toBeGreaterThanOrEqual(1);
    expect(states.every((s) => s.task_id === task.task_id)).toBe(true);
    expect(result.stderr.text).toContain("did not finish within 500 ms");
    expect((await getTask(t, task.task_id)).status).not.toMatch(/completed|failed|cancelled/);
    released.add("watch-timeout");
    await waitForStatus(t, task.task_id, "completed");
  });

  it("stops on Ctrl-C with 130 and a task that does not exist makes it exit 1", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_held", inputs: { key: "watch-abort" } });
    const controller = new AbortController();
    const running = run(t, ["watch", task.task_id], { signal: controller.signal });
    await sleep(300);
    controller.abort(new Error("interrupted"));
    expect((await running).code).toBe(130);
    released.add("watch-abort");
    const missing = await run(t, ["watch", "tsk_nothere00000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.text).toContain("tsk_nothere00000000000");
  });
});

describe("edge-tasks logs and cancel", () => {
  it("logs prints the lines there are; --follow prints new ones until the task ends", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_steps" });
    const followed = await run(t, ["logs", task.task_id, "--follow"]);
    expect(followed.code).toBe(0);
    const lines = followed.stdout.lines;
    expect(lines.filter((l) => l.includes("working on step"))).toHaveLength(3);
    expect(lines.find((l) => l.includes("working on step 2"))).toMatch(/^\d{4}-\d\d-\d\dT\S+Z warn {2}\[1\] working on step 2$/);
    expect(lines.at(-1)).toContain("processing → completed");
    const again = await run(t, ["logs", task.task_id, "--json"]);
    const parsed = again.stdout.lines.map((l) => parse<{ message: string; level: string; attempt: number; timestamp: string }>(l));
    expect(parsed.map((l) => l.message)).toEqual(lines.map((l) => l.replace(/^\S+ \S+\s+\[\d+\] /, "")));
  });

  it("cancel cancels a running task, leaves a finished one alone, and says which", async () => {
    const t = await tenant();
    // The finished task first: a held handler may hold up the local queue's next batch.
    const finished = await createTask(t, { task_type: "cli_fatal" });
    await waitForStatus(t, finished.task_id, "failed");
    const running = await createTask(t, { task_type: "cli_held", inputs: { key: "cancel-me" } });
    await waitForStatus(t, running.task_id, "processing");
    const result = await run(t, ["cancel", running.task_id, finished.task_id]);
    expect(result.code).toBe(0);
    expect(result.stdout.lines).toEqual([
      `🚫 ${running.task_id} cancelled (was processing)`,
      `❌ ${finished.task_id} had already ended (failed); left as it is`,
    ]);
    expect((await getTask(t, running.task_id)).status).toBe("cancelled");
    const json = await run(t, ["cancel", running.task_id, "--json"]);
    expect(parse<Task>(json.stdout.text).status).toBe("cancelled");
    const watched = await run(t, ["watch", running.task_id]);
    expect(watched.code).toBe(1);
    expect(watched.stderr.text).toContain("was cancelled");
  });

  it("stats shows the counts against the limit", async () => {
    const t = await tenant({ max_concurrent_tasks: 7 });
    const result = await run(t, ["stats"]);
    expect(result.code).toBe(0);
    expect(result.stdout.text).toContain("active 0/7");
    expect(parse<{ max_concurrent_tasks: number }>((await run(t, ["stats", "--json"])).stdout.text).max_concurrent_tasks).toBe(7);
  });
});

describe("edge-tasks configuration and usage errors", () => {
  it("says what is missing or wrong, with exit code 2, and what the server refused, with 1", async () => {
    const noKey = await run(null, ["list"]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr.text).toContain("EDGE_TASKS_API_KEY is not set");

    const t = await tenant();
    const badUrl = await run(t, ["list"], { env: { EDGE_TASKS_URL: "not a url" } });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr.text).toContain("EDGE_TASKS_URL is not a URL");

    expect((await run(t, ["explode"])).code).toBe(2);
    const unknownOption = await run(t, ["list", "--colour"]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr.text).toContain("unknown option --colour");
    expect((await run(t, ["get"])).stderr.text).toContain("give one task id");
    expect((await run(t, ["watch", "tsk_a", "--timeout", "soon"])).code).toBe(2);
    expect((await run(t, ["list", "--limit", "500"])).stderr.text).toContain("--limit must be a number from 1 to 100");
    expect((await run(null, [])).code).toBe(2);

    const help = await run(null, ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout.text).toContain("watch <id...>");
    expect((await run(null, ["logs", "--help"])).code).toBe(0);

    const wrongKey = await run(t, ["list"], { env: { EDGE_TASKS_API_KEY: "sk_wrong" } });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr.text).toContain("unauthorized (HTTP 401)");
    expect(wrongKey.stderr.text).toContain("check EDGE_TASKS_API_KEY");

    const down: FetchLike = async () => {
      throw new TypeError("connection refused");
    };
    const unreachable = await run(t, ["get", "tsk_a", "--url", "http://127.0.0.1:9"], { fetch: down });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.text).toContain("cannot reach the service");
    expect(unreachable.stderr.text).toContain("http://127.0.0.1:9/v1/tasks/tsk_a");
  });
});

registerHandler({
  type: "cli_hostile",
  run: async (ctx) => {
    // Escape sequences a hostile processor could send: clear the screen, retitle the window,
    // write the clipboard (OSC 52), and a line break inside a one-line field.
    await ctx.progress({ percent: 50, message: "\u001b[2J\u001b]0;owned\u0007\u001b]52;c;ZXZpbA==\u0007two\nlines" });
    await ctx.log("\u001b[31mred\u001b[0m \u009b2J done");
    throw new TaskFailure("bad\u001b[1m", "fail \u001b]0;t\u0007", false);
  },
});

describe("text from the service", () => {
  it("is printed without control characters: no escape sequence reaches the terminal", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_hostile" });
    await waitForStatus(t, task.task_id, "failed");
    const shown = [await run(t, ["get", task.task_id]), await run(t, ["logs", task.task_id]), await run(t, ["list"])];
    const printed = shown.map((r) => r.stdout.text).join("");
    expect(printed).toContain("done");
    expect(printed).toContain("fail");
    expect(printed).not.toMatch(/[\u001b\u0007\u009b]/);
  });
});

/** What no print path may emit: C0 controls but tab and line feed, DEL, C1, bidi controls. */
const ACTIVE_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
/** The board's own redraw sequences, the only escapes the CLI writes on purpose. */
const withoutRedraws = (text: string) => text.replace(/\x1b\[(\d+F|2K)/g, "");
/** C1 CSI and OSC (single characters that start sequences), DEL, a bidi override and isolate. */
const C1_AND_BIDI = "\u009b2J\u009d0;title\u009c\u007f \u202eevil\u202c \u2067iso\u2069 sep\u2028x";

registerHandler({
  type: "cli_hostile_c1",
  run: async (ctx) => {
    await ctx.progress({ percent: 50, message: `progress ${C1_AND_BIDI}`, processed: 1, total: 2 });
    await ctx.log(`log ${C1_AND_BIDI}`);
    throw new TaskFailure("bad_c1", `failure ${C1_AND_BIDI}`, false);
  },
});

describe("text from the service, every print path", () => {
  it("never reaches the terminal with C1 controls, DEL or bidi overrides; --json stays the same value", async () => {
    const t = await tenant();
    const task = await createTask(t, { task_type: "cli_hostile_c1", inputs: { note: `input ${C1_AND_BIDI}` } });
    const failed = await waitForStatus(t, task.task_id, "failed");
    const runs = {
      get: await run(t, ["get", task.task_id]),
      getJson: await run(t, ["get", task.task_id, "--json"]),
      logs: await run(t, ["logs", task.task_id]),
      logsJson: await run(t, ["logs", task.task_id, "--json"]),
      list: await run(t, ["list"]),
      listJson: await run(t, ["list", "--json"]),
      watch: await run(t, ["watch", task.task_id]),
      watchTty: await run(t, ["watch", task.task_id], { tty: true }),
      watchJson: await run(t, ["watch", task.task_id, "--json"]),
      cancelJson: await run(t, ["cancel", task.task_id, "--json"]),
    };
    for (const [name, result] of Object.entries(runs)) {
      expect(withoutRedraws(result.stdout.text), `${name} stdout`).not.toMatch(ACTIVE_CHARS);
      expect(result.stderr.text, `${name} stderr`).not.toMatch(ACTIVE_CHARS);
    }
    // The words are still there, and JSON output is the very same value, escaped.
    expect(runs.get.stdout.text).toContain("failure");
    expect(runs.get.stdout.text).toContain("input");
    expect(runs.logs.stdout.text).toContain("log");
    expect(runs.watch.stderr.text).toContain("failure");
    expect(parse<Task>(runs.getJson.stdout.text)).toEqual(failed);
    expect(parse<Task[]>(runs.listJson.stdout.text)[0]?.inputs).toEqual({ note: `input ${C1_AND_BIDI}` });
    expect(runs.getJson.stdout.text).toContain("\\u009b2J");
    const lines = runs.logsJson.stdout.lines.map((l) => parse<{ message: string }>(l).message);
    expect(lines).toContain(`log ${C1_AND_BIDI}`);
  });

  it("prints an API error's type, message and details without controls, and a network error's cause", async () => {
    const t = await tenant();
    const hostileApi: FetchLike = async () =>
      Response.json(
        {
          success: false,
          status: 400,
          error: { type: "invalid_json\u001b]0;x\u0007", message: `bad\nline ${C1_AND_BIDI} \u001b[2J`, details: { why: `\u001b]8;;http://evil\u001b\\ ${C1_AND_BIDI}` } },
        },
        { status: 400 },
      );
    const api = await run(t, ["get", "tsk_a"], { fetch: hostileApi });
    expect(api.code).toBe(1);
    expect(api.stderr.text).toContain("(HTTP 400)");
    expect(api.stderr.text).toContain("details:");
    expect(api.stderr.text).not.toMatch(ACTIVE_CHARS);
    // The message is one line: a server cannot forge a line of the CLI's own.
    expect(api.stderr.lines.filter((l) => l.includes("line"))).toHaveLength(1);
    expect(api.stderr.lines.find((l) => l.includes("line"))).toContain("bad");

    const hostileNetwork: FetchLike = async () => {
      throw new TypeError(`refused \u001b[2J ${C1_AND_BIDI}`);
    };
    const down = await run(t, ["get", "tsk_a"], { fetch: hostileNetwork });
    expect(down.code).toBe(1);
    expect(down.stderr.text).toContain("cannot reach the service");
    expect(down.stderr.text).not.toMatch(ACTIVE_CHARS);
  });
});

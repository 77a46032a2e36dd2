import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

/** Where the dashboard tests get their Chromium, and how to start it. */
export interface ChromiumChoice {
  source: "CHROMIUM_PATH" | "system" | "@sparticuz/chromium";
  executablePath: string;
  args: string[];
}

const SYSTEM_CHROMIUM = "/usr/bin/chromium";
// Without the background-networking flags Chromium waits on services it cannot reach offline.
const SYSTEM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
// @sparticuz/chromium's flags are made for a serverless function fetching anything; these two
// would switch off the very protections the dashboard tests check (same-origin, mixed content).
const UNSAFE_ARGS = new Set(["--disable-web-security", "--allow-running-insecure-content"]);

/**
 * A system Chromium when there is one (CHROMIUM_PATH, else Debian's /usr/bin/chromium), else the
 * headless Chromium that the @sparticuz/chromium package ships compressed in its npm archive:
 * `npm ci` is all a fresh machine needs, no apt-get and no browser download.
 */
export async function chooseChromium(env: Record<string, string | undefined> = process.env, exists: (path: string) => boolean = existsSync): Promise<ChromiumChoice> {
  const wanted = env.CHROMIUM_PATH;
  if (wanted && exists(wanted)) return { source: "CHROMIUM_PATH", executablePath: wanted, args: SYSTEM_ARGS };
  if (exists(SYSTEM_CHROMIUM)) return { source: "system", executablePath: SYSTEM_CHROMIUM, args: SYSTEM_ARGS };
  const { default: packaged } = await import("@sparticuz/chromium");
  // Unpacks the browser to the temporary directory on first use (about 2 s), then reuses it.
  const executablePath = await packaged.executablePath();
  return { source: "@sparticuz/chromium", executablePath, args: packaged.args.filter((arg) => !UNSAFE_ARGS.has(arg)) };
}

/** Starts the chosen Chromium headless through playwright-core. */
export async function launchChromium(): Promise<Browser> {
  const choice = await chooseChromium();
  return chromium.launch({ executablePath: choice.executablePath, args: choice.args });
}

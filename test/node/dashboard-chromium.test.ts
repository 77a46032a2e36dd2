import { describe, expect, it } from "vitest";
import { chooseChromium, launchChromium } from "./chromium";

describe("the Chromium the dashboard tests use", { timeout: 60_000 }, () => {
  it("is CHROMIUM_PATH when that exists, else the system's", async () => {
    const present = (paths: string[]) => (path: string) => paths.includes(path);
    expect(await chooseChromium({ CHROMIUM_PATH: "/opt/chrome" }, present(["/opt/chrome", "/usr/bin/chromium"]))).toMatchObject({ source: "CHROMIUM_PATH", executablePath: "/opt/chrome" });
    expect(await chooseChromium({ CHROMIUM_PATH: "/nowhere" }, present(["/usr/bin/chromium"]))).toMatchObject({ source: "system", executablePath: "/usr/bin/chromium" });
    expect(await chooseChromium({}, present(["/usr/bin/chromium"]))).toMatchObject({ source: "system" });
  });

  it("falls back to the packaged @sparticuz/chromium, without the flags that switch off web security", async () => {
    const choice = await chooseChromium({ CHROMIUM_PATH: "/nowhere" }, (path) => !["/nowhere", "/usr/bin/chromium"].includes(path));
    expect(choice.source).toBe("@sparticuz/chromium");
    expect(choice.args).not.toContain("--disable-web-security");
    expect(choice.args).not.toContain("--allow-running-insecure-content");
  });

  it("launches, whichever it is, and renders a page", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.setContent("<p id=p>rendered</p>");
      expect(await page.locator("#p").textContent()).toBe("rendered");
    } finally {
      await browser.close();
    }
  });
});

import type { Page } from "playwright-core";

export interface CancelBox {
  left: number;
  right: number;
  /** Whether the button itself is what a click at its centre would hit (not clipped, not covered). */
  hit: boolean;
}

export interface LayoutReport {
  scrollWidth: number;
  innerWidth: number;
  cancels: CancelBox[];
}

// Runs in the page (a string: the test project has no DOM types). Each visible Cancel button is
// scrolled to the middle of the viewport first, since elementFromPoint sees only what is on screen.
const PROBE = `(() => {
  const cancels = [...document.querySelectorAll("#rows button.cancel")].filter((b) => b.checkVisibility());
  const boxes = cancels.map((button) => {
    button.scrollIntoView({ block: "center", inline: "nearest" });
    const r = button.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return { left: r.left, right: r.right, hit: hit === button };
  });
  window.scrollTo(0, 0);
  return { scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth, cancels: boxes };
})()`;

/**
 * Sets the viewport, measures whether the page scrolls sideways and whether every Cancel button
 * is on screen and clickable, and saves a full-page screenshot to `file`.
 */
export async function checkLayout(page: Page, width: number, height: number, file: string): Promise<LayoutReport> {
  await page.setViewportSize({ width, height });
  // Two frames: the resize's layout and the charts' redraw are done.
  await page.evaluate("new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))");
  const report = await page.evaluate<LayoutReport>(PROBE);
  await page.screenshot({ path: file, fullPage: true, animations: "disabled" });
  return report;
}

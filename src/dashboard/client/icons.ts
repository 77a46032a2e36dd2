import type { TaskStatus } from "../../client/types.js";
import { svg } from "./dom.js";

/*
 * Status icons drawn as SVG, so they look the same on every machine: colour emoji need an emoji
 * font, and where none is installed they render as empty boxes. Colours come from the stylesheet
 * (`.icon-<status>`), through currentColor.
 */

type Shape = (icon: SVGSVGElement) => void;

const ring = (attributes: Record<string, string | number> = {}) => svg("circle", { cx: 8, cy: 8, r: 6, fill: "none", stroke: "currentColor", "stroke-width": 2, ...attributes });
const disc = () => svg("circle", { cx: 8, cy: 8, r: 7, fill: "currentColor" });
const mark = (d: string) => svg("path", { d, fill: "none", stroke: "var(--icon-mark, #fff)", "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round" });
const line = (d: string) => svg("path", { d, fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linecap": "round" });

const SHAPES: Record<TaskStatus, Shape> = {
  // Waiting for a slot: a dotted ring.
  created: (icon) => icon.append(ring({ "stroke-dasharray": "2.4 2.3" })),
  // Admitted, waiting for a consumer: a clock.
  queued: (icon) => icon.append(ring(), line("M8 4.8V8l2.2 1.6")),
  // Running: an open arc the stylesheet turns (unless the reader asked for less motion).
  processing: (icon) => icon.append(ring({ opacity: 0.25 }), line("M8 2a6 6 0 0 1 6 6")),
  completed: (icon) => icon.append(disc(), mark("M4.8 8.3l2.2 2.2 4.2-4.6")),
  failed: (icon) => icon.append(disc(), mark("M5.5 5.5l5 5M10.5 5.5l-5 5")),
  cancelled: (icon) => icon.append(ring(), line("M3.8 12.2l8.4-8.4")),
};

/** The icon of a status; decorative, since the status is always written beside it. */
export function statusIcon(status: TaskStatus): SVGSVGElement {
  const icon = svg("svg", { viewBox: "0 0 16 16", width: 16, height: 16, class: `icon icon-${status}`, "aria-hidden": "true", focusable: "false" });
  icon.dataset.status = status;
  SHAPES[status](icon);
  return icon;
}

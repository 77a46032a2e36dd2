/**
 * DOM helpers. Everything the page shows comes from task data anyone with a key can write, so
 * it is built with createElement and textContent only: the page's Trusted Types policy makes an
 * innerHTML a TypeError.
 */

interface ElementType<T extends Element> {
  new (): T;
  prototype: T;
}

/** The element with this id, of this type; a page without it is a build error worth failing on. */
export function byId<T extends Element>(id: string, type: ElementType<T>): T {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`dashboard: missing #${id}`);
  return node;
}

/** A new HTML element with an optional class and text. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** A new SVG element with its attributes. */
export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string | number> = {}, text?: string): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export const ui = {
  keyForm: byId("key-form", HTMLFormElement),
  keyInput: byId("key", HTMLInputElement),
  keyError: byId("key-error", HTMLElement),
  board: byId("board", HTMLElement),
  forget: byId("forget", HTMLButtonElement),
  connection: byId("connection", HTMLElement),
  counts: byId("counts", HTMLElement),
  charts: {
    throughput: byId("chart-throughput", HTMLElement),
    depth: byId("chart-depth", HTMLElement),
    failures: byId("chart-failures", HTMLElement),
    types: byId("chart-types", HTMLElement),
  },
  since: byId("charts-since", HTMLTimeElement),
  filters: byId("filters", HTMLFormElement),
  statusFilter: byId("status-filter", HTMLSelectElement),
  typeFilter: byId("type-filter", HTMLInputElement),
  notice: byId("notice", HTMLElement),
  rows: byId("rows", HTMLTableSectionElement),
  empty: byId("empty", HTMLElement),
  more: byId("more", HTMLButtonElement),
  detail: byId("detail", HTMLElement),
  detailClose: byId("detail-close", HTMLButtonElement),
  detailIcon: byId("detail-icon", HTMLElement),
  detailTitle: byId("detail-title", HTMLElement),
  detailTask: byId("detail-task", HTMLElement),
  logs: byId("logs", HTMLOListElement),
  logsEmpty: byId("logs-empty", HTMLElement),
};

export function setConnection(state: string, text: string): void {
  ui.connection.dataset.state = state;
  ui.connection.textContent = text;
}

/** Runs `fn` at most once every `ms`, the last call always honoured. */
export function throttle(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | 0 = 0;
  let last = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = 0;
      last = Date.now();
      fn();
    }, Math.max(0, last + ms - Date.now()));
  };
}

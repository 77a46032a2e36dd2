/** The edge-tasks CLI: `main` (testable, all I/O injected) and the live progress board the demo reuses. */
export { DEFAULT_URL, main, VERSION, type CliIO } from "./main";
export { type Output, ProgressBoard } from "./board";
export { bar, describe, ICONS, progressLine } from "./render";

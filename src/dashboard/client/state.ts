import type { Task, TaskStatus } from "../../client/types.js";

/** The cells of a task's row that change with the task. */
export interface RowCells {
  icon: HTMLSpanElement;
  status: HTMLSpanElement;
  type: HTMLDivElement;
  bar: HTMLProgressElement;
  percent: HTMLSpanElement;
  message: HTMLDivElement;
  position: HTMLDivElement;
  error: HTMLDivElement;
  inputs: HTMLElement;
  created: HTMLTimeElement;
  cancel: HTMLButtonElement;
}

/** A task the page knows: its last snapshot, the sequence of the event that brought it, its row. */
export interface Entry {
  task: Task;
  seq: number;
  row: HTMLTableRowElement | null;
  cells: RowCells | null;
}

export interface Filter {
  statuses: TaskStatus[];
  types: string[];
}

export const TERMINAL: ReadonlySet<TaskStatus> = new Set<TaskStatus>(["completed", "failed", "cancelled"]);
export const STATUSES: readonly TaskStatus[] = ["created", "queued", "processing", "completed", "failed", "cancelled"];
export const isStatus = (value: string): value is TaskStatus => (STATUSES as readonly string[]).includes(value);

/** The page's one mutable state, shared by its modules. */
export const state = {
  apiKey: null as string | null,
  /** Bumped by every reset: async work started under an older session drops its result. */
  session: 0,
  /** The resume point of the event stream: the highest sequence number seen. */
  lastSeq: 0,
  lastHeardAt: 0,
  /** Whether the first page was asked for since the last reset (the stream is open by then). */
  listLoaded: false,
  nextCursor: null as string | null,
  selected: null as string | null,
  filter: { statuses: [], types: [] } as Filter,
  /** task_id → entry */
  tasks: new Map<string, Entry>(),
};

/**
 * What one module asks of another that imports it: set once at start-up by main.ts, so that the
 * modules form no import cycle.
 */
export const hooks = {
  /** The service refused the key: back to the key form. */
  keyRefused: (): void => {},
  /** A task changed: counts, charts and the detail panel follow. */
  taskChanged: (_entry: Entry): void => {},
  /** Start over: a fresh list and a stream from now. */
  restart: (): void => {},
  /** The stream is open (again): load what it does not replay. */
  streamOpened: (_session: number, _reconnected: boolean): void => {},
};

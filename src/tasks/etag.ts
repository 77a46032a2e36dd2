import { createHash } from "node:crypto";
import type { Task } from "./model";

/**
 * The entity tag of a task's visible state: any change a client could see gives a new tag, so
 * a long-poll sent with the tag it last saw never misses a change made between two polls.
 */
export const taskEtag = (task: Task): string => `"${createHash("sha256").update(JSON.stringify(task)).digest("base64url").slice(0, 22)}"`;

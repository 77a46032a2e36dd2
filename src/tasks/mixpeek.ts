// Mixpeek's task dialect (SPEC §11): how a task and a list request translate between edge-tasks
// and the shapes of Mixpeek's published OpenAPI document. Pure: no I/O, no Hono.
import { ApiError } from "../errors";
import { TASK_STATUSES, TASK_TYPE_PATTERN, type Task, type TaskStatus } from "./model";

/** Mixpeek's TaskStatusEnum, in the order of its document. */
export const MIXPEEK_STATUSES = [
  "PENDING", "IN_PROGRESS", "PROCESSING", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED",
  "UNKNOWN", "SKIPPED", "DRAFT", "ACTIVE", "ARCHIVED", "SUSPENDED",
] as const;
export type MixpeekStatus = (typeof MIXPEEK_STATUSES)[number];

export const TO_MIXPEEK_STATUS: Readonly<Record<TaskStatus, MixpeekStatus>> = {
  created: "DRAFT",
  queued: "PENDING",
  processing: "PROCESSING",
  completed: "COMPLETED",
  failed: "FAILED",
  cancelled: "CANCELED",
};

/** Mixpeek's TaskType enum: a task_type outside it would make a generated client reject the task. */
export const MIXPEEK_TASK_TYPES = [
  "api_namespaces_create", "api_namespaces_delete", "api_namespaces_migrations_run", "api_buckets_objects_create",
  "api_buckets_delete", "api_buckets_batches_process", "api_buckets_batches_submit", "api_buckets_uploads_create",
  "api_buckets_uploads_confirm", "api_buckets_uploads_batch_confirm", "api_collections_documents_create",
  "api_collections_extraction_artifacts", "api_taxonomies_create", "api_taxonomies_execute", "api_taxonomies_materialize",
  "api_evaluations_run", "api_evaluations_dataset_create", "api_retrievers_publish", "api_collections_export",
  "engine_feature_extractor_run", "engine_inference_run", "engine_object_processing", "engine_cluster_build",
  "thumbnail", "video_segment", "audio_segment", "materialize", "plugin_custom", "model_custom",
] as const;
export type MixpeekTaskType = (typeof MIXPEEK_TASK_TYPES)[number];
const isMixpeekTaskType = (value: string): value is MixpeekTaskType => (MIXPEEK_TASK_TYPES as readonly string[]).includes(value);

/** The built-in handlers (SPEC §9) under the Mixpeek type of the same work. */
const BUILTIN_TO_MIXPEEK: Readonly<Record<string, MixpeekTaskType>> = {
  object_create: "api_buckets_objects_create",
  batch_import: "api_buckets_batches_process",
  index_rebuild: "engine_feature_extractor_run",
  clustering: "engine_cluster_build",
  taxonomy_apply: "api_taxonomies_execute",
  model_tuning: "model_custom",
};

/** A task type as Mixpeek names it: the built-ins by their Mixpeek counterpart, processor types as plugin_custom. */
export function toMixpeekTaskType(taskType: string): MixpeekTaskType {
  return BUILTIN_TO_MIXPEEK[taskType] ?? (isMixpeekTaskType(taskType) ? taskType : "plugin_custom");
}

/**
 * The edge-tasks types a `task_type` filter selects. A Mixpeek name selects the built-ins shown
 * under it and a task of that very name; any other valid name is taken as an edge-tasks type,
 * so processor types (all shown as plugin_custom) stay filterable by their own name.
 */
export function fromMixpeekTaskType(value: string): string[] {
  const name = value.trim();
  if (!TASK_TYPE_PATTERN.test(name)) throw new ApiError("validation_error", `invalid task_type "${value}"`, { field: "task_type" });
  // Every processor type is shown as plugin_custom; no index selects "all of them", and an empty
  // answer would be wrong, so the caller is told to name the type.
  if (name === "plugin_custom") {
    throw new ApiError("validation_error", "plugin_custom stands for every processor type here: filter by the type's own name (additional_data.task_type)", {
      field: "task_type",
    });
  }
  const builtins = Object.entries(BUILTIN_TO_MIXPEEK).filter(([, mixpeek]) => mixpeek === name).map(([native]) => native);
  return [...new Set([name, ...builtins])];
}

/**
 * The edge-tasks statuses a status filter selects: Mixpeek's names and ours, any case. Mixpeek
 * statuses that no edge-tasks task ever has (ACTIVE, SKIPPED, …) select nothing.
 */
export function fromMixpeekStatus(value: string): TaskStatus[] {
  const name = value.trim().toUpperCase();
  const native = TASK_STATUSES.find((s) => s.toUpperCase() === name);
  if (native) return [native];
  if (name === "IN_PROGRESS") return ["processing"];
  if (!(MIXPEEK_STATUSES as readonly string[]).includes(name)) {
    throw new ApiError("validation_error", `unknown status "${value}"`, { field: "status" });
  }
  return TASK_STATUSES.filter((s) => TO_MIXPEEK_STATUS[s] === name);
}

type JsonRecord = Record<string, unknown>;

/** Mixpeek's TaskResponse. */
export interface MixpeekTask {
  task_id: string;
  task_type: MixpeekTaskType;
  status: MixpeekStatus;
  /** Mixpeek's schema allows a list of strings or objects: the task's inputs object is its one item. */
  inputs: JsonRecord[];
  outputs: JsonRecord[] | null;
  error: string | null;
  additional_data: JsonRecord;
}

/**
 * A task in Mixpeek's shape. `inputs` and `outputs` (always JSON objects here) become a
 * one-item list, the only shape of that schema that keeps every value (a number or a nested
 * list is not a valid item of its own). What Mixpeek has no field for goes to `additional_data`,
 * the native status and type included; `additional_data.error` is the message, as in Mixpeek.
 */
export function toMixpeekTask(task: Task): MixpeekTask {
  const { task_id, task_type, status, inputs, outputs, error, ...rest } = task;
  return {
    task_id,
    task_type: toMixpeekTaskType(task_type),
    status: TO_MIXPEEK_STATUS[status],
    inputs: [inputs],
    outputs: outputs === null ? null : [outputs],
    error: error?.message ?? null,
    additional_data: {
      ...rest,
      task_type,
      native_status: status,
      error: error?.message ?? null,
      error_code: error?.code ?? null,
      error_retryable: error?.retryable ?? null,
    },
  };
}

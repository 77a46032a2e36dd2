/**
 * The data-plane types (SPEC §5, §8) and the operation that creates each. Only that operation
 * checks what the task will touch, so `POST /v1/tasks` refuses them unless the namespace runs
 * the type on its own processor.
 */
export const DATA_PLANE_OPERATIONS: Readonly<Record<string, string>> = {
  object_create: "POST /v1/buckets/{bucket}/objects",
  batch_import: "POST /v1/buckets/{bucket}/objects/batch",
  index_rebuild: "POST /v1/collections/{collection}/rebuild",
  clustering: "POST /v1/collections/{collection}/cluster",
  taxonomy_apply: "POST /v1/collections/{collection}/apply-taxonomy",
  model_tuning: "POST /v1/models/{model}/tune",
};

/** The operation that creates `taskType`, when it is a data-plane type. */
export const dataPlaneOperation = (taskType: string): string | undefined =>
  Object.hasOwn(DATA_PLANE_OPERATIONS, taskType) ? DATA_PLANE_OPERATIONS[taskType] : undefined;

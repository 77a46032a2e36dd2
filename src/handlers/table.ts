import type { BuiltinInputs, BuiltinTaskType } from "../tasks/builtin-types";
import { batchImport } from "./batch-import";
import { clustering } from "./clustering";
import { indexRebuild } from "./index-rebuild";
import { modelTuning } from "./model-tuning";
import { objectCreate } from "./object-create";
import { type HandlerDefinition, testHandlers } from "./registry";
import { taxonomyApply } from "./taxonomy-apply";

/**
 * The handler of each built-in task type (SPEC §9). Keyed by the types of src/tasks/builtin-types,
 * so a type without its handler, or a handler whose inputs are not its type's, does not compile.
 */
export const BUILTIN_HANDLERS: { readonly [T in BuiltinTaskType]: HandlerDefinition<BuiltinInputs[T]> } = {
  object_create: objectCreate,
  batch_import: batchImport,
  index_rebuild: indexRebuild,
  clustering,
  taxonomy_apply: taxonomyApply,
  model_tuning: modelTuning,
};

const builtins = new Map<string, HandlerDefinition>(Object.entries(BUILTIN_HANDLERS));

/** The handler of a task type: one a test registered, else the built-in one. */
export const handlerFor = (taskType: string): HandlerDefinition | undefined => testHandlers.get(taskType) ?? builtins.get(taskType);

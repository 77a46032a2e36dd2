import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";

/** Mixpeek's published document of its task endpoints (a copy of shared/mixpeek/tasks-openapi.json). */
export const MIXPEEK_DOCUMENT_PATH = path.resolve(import.meta.dirname, "../fixtures/mixpeek-tasks-openapi.json");

interface MixpeekDocument {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>;
  components: { schemas: Record<string, unknown> };
}

export const mixpeekDocument = JSON.parse(readFileSync(MIXPEEK_DOCUMENT_PATH, "utf8")) as MixpeekDocument;

const BASE = "https://mixpeek.test/tasks-openapi.json";
// `example` is an OpenAPI keyword, not JSON Schema's: strict mode would refuse the document.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ $id: BASE, components: mixpeekDocument.components });

const compiled = new Map<string, ValidateFunction>();

/** A validator for the named component schema of Mixpeek's document (TaskResponse, ListTasksResponse, …). */
export function mixpeekSchema(name: string): ValidateFunction {
  const ref = `${BASE}#/components/schemas/${name}`;
  let validate = compiled.get(ref);
  if (!validate) {
    validate = ajv.compile({ $ref: ref });
    compiled.set(ref, validate);
  }
  return validate;
}

/** The validator of the JSON answer Mixpeek's document gives `method path` with `status`. */
export function mixpeekResponseSchema(method: string, documentPath: string, status: number): ValidateFunction {
  const response = mixpeekDocument.paths[documentPath]?.[method.toLowerCase()]?.responses[String(status)];
  const ref = response?.content?.["application/json"]?.schema.$ref;
  if (!ref) throw new Error(`Mixpeek's document has no JSON answer ${status} for ${method} ${documentPath}`);
  return mixpeekSchema(ref.replace("#/components/schemas/", ""));
}

/** The schema errors of a value, as readable lines (empty when it is valid). */
export function schemaErrors(validate: ValidateFunction, value: unknown): string[] {
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`);
}

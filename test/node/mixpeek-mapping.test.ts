import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/errors";
import { fromMixpeekStatus, fromMixpeekTaskType, toMixpeekTask, toMixpeekTaskType } from "../../src/tasks/mixpeek";
import { mixpeekCriteria, MixpeekListBody, offsetPagination } from "../../src/tasks/mixpeek-list";
import { TASK_STATUSES, type Task, type TaskStatus } from "../../src/tasks/model";
import { MIXPEEK_DOCUMENT_PATH, mixpeekSchema, schemaErrors } from "./mixpeek-schema";

const SHAPES: Record<string, Task["inputs"]> = {
  empty: {},
  flat: { object: "s3://in/a.mp4", count: 3, ratio: 0.5, ok: true, missing: null },
  nested: { config: { algorithm: "kmeans", k: 5, params: { seed: null, tags: ["a", "b"] } } },
  arrays: { ids: ["obj_1", "obj_2"], matrix: [[1, 2], [3, 4]], mixed: [1, "two", null, { three: 3 }, [false]] },
  unicode: { "clé": "välue ✓", "": "empty key", long: "x".repeat(1000) },
};

function task(status: TaskStatus, inputs: Task["inputs"], outputs: Task["outputs"]): Task {
  const at = "2026-11-29T12:00:00.000Z";
  const finished = status === "completed" || status === "failed" || status === "cancelled";
  return {
    task_id: `tsk_${status}`,
    namespace_id: "ns_test",
    task_type: "transcode",
    status,
    inputs,
    outputs: status === "completed" ? outputs : null,
    progress: { percent: status === "completed" ? 100 : 40, message: "step 2", processed: 2, total: 5 },
    error: status === "failed" ? { code: "bad_input", message: "the file is not a video", retryable: false } : null,
    attempt: 1,
    max_attempts: 3,
    priority: 5,
    parent_task_id: null,
    concurrency_key: null,
    run_at: null,
    replay_of_task_id: null,
    queue_position: status === "created" ? 1 : null,
    waiting: null,
    created_at: at,
    queued_at: status === "created" ? null : at,
    started_at: status === "processing" || finished ? at : null,
    completed_at: finished ? at : null,
    updated_at: at,
    timeout_at: status === "processing" ? at : null,
    expires_at: finished ? at : null,
  };
}

describe("a task in Mixpeek's shape", () => {
  it("Mixpeek's document is itself a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(MIXPEEK_DOCUMENT_PATH);
    expect(result.errors ?? []).toEqual([]);
  });

  it("is a valid TaskResponse in every status, with inputs and outputs of every JSON shape kept whole", () => {
    const validate = mixpeekSchema("TaskResponse");
    const expected: Record<TaskStatus, string> = {
      created: "DRAFT", queued: "PENDING", processing: "PROCESSING", completed: "COMPLETED", failed: "FAILED", cancelled: "CANCELED",
    };
    for (const status of TASK_STATUSES) {
      for (const [shape, value] of Object.entries(SHAPES)) {
        const native = task(status, value, { ...value, result: shape });
        const mixpeek = toMixpeekTask(native);
        expect(schemaErrors(validate, mixpeek), `${status} ${shape}`).toEqual([]);
        expect(mixpeek.status).toBe(expected[status]);
        expect(mixpeek.inputs).toEqual([value]);
        expect(mixpeek.outputs).toEqual(status === "completed" ? [{ ...value, result: shape }] : null);
        expect(mixpeek.error).toBe(status === "failed" ? "the file is not a video" : null);
        expect(mixpeek.additional_data).toMatchObject({
          task_type: "transcode", native_status: status, progress: native.progress, attempt: 1, max_attempts: 3,
          created_at: native.created_at, completed_at: native.completed_at, expires_at: native.expires_at,
        });
      }
    }
  });

  it("the native task is not a valid TaskResponse (what a Mixpeek client failed on)", () => {
    const errors = schemaErrors(mixpeekSchema("TaskResponse"), task("completed", { a: 1 }, { b: 2 }));
    expect(errors.some((e) => e.startsWith("/status"))).toBe(true);
    expect(errors.some((e) => e.startsWith("/inputs"))).toBe(true);
    expect(errors.some((e) => e.startsWith("/task_type"))).toBe(true);
  });

  it("a failed task keeps its error code and retryability in additional_data", () => {
    const mixpeek = toMixpeekTask(task("failed", {}, null));
    expect(mixpeek.additional_data).toMatchObject({ error: "the file is not a video", error_code: "bad_input", error_retryable: false });
  });

  it("shows built-in types by their Mixpeek counterpart and processor types as plugin_custom", () => {
    expect(toMixpeekTaskType("clustering")).toBe("engine_cluster_build");
    expect(toMixpeekTaskType("object_create")).toBe("api_buckets_objects_create");
    expect(toMixpeekTaskType("thumbnail")).toBe("thumbnail");
    expect(toMixpeekTaskType("transcode")).toBe("plugin_custom");
    const validate = mixpeekSchema("TaskResponse");
    for (const type of ["object_create", "batch_import", "index_rebuild", "clustering", "taxonomy_apply", "model_tuning", "x"]) {
      expect(schemaErrors(validate, toMixpeekTask({ ...task("queued", {}, null), task_type: type })), type).toEqual([]);
    }
  });
});

describe("a Mixpeek list request", () => {
  const criteria = (body: unknown) => mixpeekCriteria(MixpeekListBody.parse(body));

  it("takes Mixpeek's status names in any case and selects nothing for statuses no task here has", () => {
    expect(fromMixpeekStatus("PENDING")).toEqual(["queued"]);
    expect(fromMixpeekStatus("in_progress")).toEqual(["processing"]);
    expect(fromMixpeekStatus("Canceled")).toEqual(["cancelled"]);
    expect(fromMixpeekStatus("cancelled")).toEqual(["cancelled"]);
    expect(fromMixpeekStatus("DRAFT")).toEqual(["created"]);
    expect(fromMixpeekStatus("ARCHIVED")).toEqual([]);
    expect(criteria({ status: "SKIPPED" }).none).toBe(true);
    expect(() => fromMixpeekStatus("bogus")).toThrow(ApiError);
  });

  it("maps a Mixpeek task_type to the built-ins shown under it, and keeps a native type name", () => {
    expect(fromMixpeekTaskType("engine_cluster_build").sort()).toEqual(["clustering", "engine_cluster_build"]);
    expect(fromMixpeekTaskType("transcode")).toEqual(["transcode"]);
    expect(() => fromMixpeekTaskType("Not A Type")).toThrow(ApiError);
    expect(() => fromMixpeekTaskType("plugin_custom")).toThrow(/filter by the type's own name/);
  });

  it("reads filters as the AND of their conditions and shorthand pairs", () => {
    const c = criteria({
      status: "PENDING",
      filters: {
        AND: [
          { field: "status", operator: "in", value: ["PENDING", "PROCESSING"] },
          { field: "created_at", operator: "gte", value: "2026-11-29T12:00:00.000Z" },
          { field: "created_at", operator: "lt", value: "2026-11-30T00:00:00.000Z" },
        ],
        task_type: "transcode",
        case_sensitive: false,
      },
      sort: { field: "updated_at" },
    });
    expect(c).toEqual({
      statuses: ["queued"], taskTypes: ["transcode"], createdAfter: "2026-11-29T11:59:59.999Z", createdBefore: "2026-11-30T00:00:00.000Z",
      sort: { field: "updated_at", direction: "asc" }, none: false,
    });
    expect(criteria({ status: "PENDING", filters: { AND: [{ field: "status", value: "FAILED" }] } }).none).toBe(true);
    expect(criteria({}).sort).toEqual({ field: "created_at", direction: "desc" });
  });

  it("refuses with 422 what it cannot answer exactly: OR, NOT, search, other fields and sorts", () => {
    const refused = [
      { filters: { OR: [{ field: "status", value: "FAILED" }] } },
      { filters: { NOT: [{ field: "status", value: "FAILED" }] } },
      { filters: { AND: [{ field: "inputs.user", value: "u1" }] } },
      { filters: { AND: [{ field: "status", operator: "regex", value: "F.*" }] } },
      { filters: { AND: ["status"] } },
      { search: "video" },
      { sort: { field: "priority" } },
    ];
    for (const body of refused) {
      expect(() => criteria(body), JSON.stringify(body)).toThrow(expect.objectContaining({ type: "validation_error" }));
    }
    expect(MixpeekListBody.safeParse({ unknown_field: 1 }).success).toBe(false);
  });

  it("offset pagination points at its neighbours and stops at the end", () => {
    const validate = mixpeekSchema("PaginationResponse");
    const first = offsetPagination({ path: "/p", limit: 2, offset: 0, more: true, total: 5, includeTotal: true });
    expect(first).toEqual({
      total: 5, page: 1, page_size: 2, total_pages: 3, next_page: "/p?limit=2&offset=2&include_total=true", previous_page: null, next_cursor: null,
    });
    const last = offsetPagination({ path: "/p", limit: 2, offset: 4, more: false, includeTotal: false });
    expect(last).toMatchObject({ page: 3, next_page: null, previous_page: "/p?limit=2&offset=2", total: null });
    expect(schemaErrors(validate, first)).toEqual([]);
    expect(schemaErrors(validate, last)).toEqual([]);
  });
});

import { collectionsSourcing } from "../db/dataplane";
import { insertPendingObjects, type NewObjectInput, pendingObjects, removePendingObject, showObjects } from "../db/objects";
import { unwrap } from "../errors";
import { newId } from "../ids";
import { namespaceStub } from "../namespace/stub";
import { isoNow } from "../time";

/**
 * Creates an object and the object_create task of every collection sourcing its bucket. The
 * object is stored hidden ('pending'), its tasks are made in one atomic step keyed by the object,
 * and only then is it shown: nobody sees an object without its tasks, and no task is made for an
 * object that is not stored. A repeat with the same `objectId` (a resumed batch import) creates
 * nothing twice. A request that dies half-way leaves a hidden object that the cron sweep either
 * completes (its tasks exist) or removes (they do not).
 */
export async function createObject(
  env: Env,
  namespaceId: string,
  origin: string,
  bucketId: string,
  input: NewObjectInput,
  objectId = newId("obj"),
  parentTaskId?: string,
) {
  const [made] = await createObjects(env, namespaceId, origin, bucketId, [{ objectId, input }], parentTaskId);
  if (!made) throw new Error("object creation returned nothing");
  return made;
}

/** createObject for many objects at once: three round trips for the lot instead of three each. */
export async function createObjects(
  env: Env,
  namespaceId: string,
  origin: string,
  bucketId: string,
  items: { objectId: string; input: NewObjectInput }[],
  parentTaskId?: string,
) {
  const createdAt = isoNow();
  const createdMs = Date.parse(createdAt);
  await insertPendingObjects(env.DB, namespaceId, bucketId, items, createdAt, createdMs);
  const collections = await collectionsSourcing(env.DB, namespaceId, bucketId);
  const objects = items.map(({ objectId, input }) => ({ object_id: objectId, bucket_id: bucketId, key: input.key ?? null, metadata: input.metadata ?? {}, created_at: createdAt }));
  const taskIds = unwrap(
    await namespaceStub(env, namespaceId).createTasks(
      objects.flatMap((object) =>
        collections.map((collectionId) => ({
          key: `obj:${object.object_id}:${collectionId}`,
          // Keyed by collection: a big import into one collection shares the slots fairly with others.
          input: { task_type: "object_create", inputs: { object_id: object.object_id, collection_id: collectionId }, concurrency_key: collectionId, ...(parentTaskId ? { parent_task_id: parentTaskId } : {}) },
        })),
      ),
      origin,
      objects.map((object) => ({ type: "object.created", data: { object } })),
    ),
  );
  const made = objects.map((object, i) => ({ ...object, task_ids: taskIds.slice(i * collections.length, (i + 1) * collections.length) }));
  await showObjects(env.DB, namespaceId, made);
  return made;
}

/** Pending objects older than this are swept: their request has long ended one way or another. */
const SWEEP_AGE_MS = 5 * 60_000;

/**
 * The cron's repair of objects whose creating request died between storing the object and
 * showing it: if its tasks were made, it is shown; if not, it is removed (its client got an error).
 */
export async function sweepPendingObjects(env: Env, now: number, limit = 500): Promise<{ shown: number; removed: number }> {
  const results = await pendingObjects(env.DB, now - SWEEP_AGE_MS, limit);
  let shown = 0;
  let removed = 0;
  for (const row of results) {
    const made = await namespaceStub(env, row.namespace_id).tasksByKeyPrefix(`obj:${row.object_id}:`);
    if (made.length > 0) {
      await showObjects(env.DB, row.namespace_id, [{ object_id: row.object_id, task_ids: made.map((m) => m.task_id) }]);
      shown++;
    } else {
      await removePendingObject(env.DB, row.namespace_id, row.object_id);
      removed++;
    }
  }
  return { shown, removed };
}

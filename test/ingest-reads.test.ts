import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { workInputRows } from "../src/db/documents";
import { insertPendingObjects, showObjects } from "../src/db/objects";
import { meteredDb } from "./d1-meta";

async function seedObjects(namespaceId: string, prefix: string, count: number): Promise<string[]> {
  const items = Array.from({ length: count }, (_, i) => ({ objectId: `obj_${prefix}${String(i).padStart(6, "0")}`, input: { content: `text ${i}`, metadata: { n: i } } }));
  await insertPendingObjects(env.DB, namespaceId, "bkt_reads", items, new Date().toISOString(), Date.now());
  return items.map((item) => item.objectId);
}

describe("the ingest path's reads of objects", () => {
  it("shows a group of objects reading each once, not the namespace's objects for each", async () => {
    const ids = await seedObjects("ns_reads_show", "show", 2000);
    const other = await seedObjects("ns_reads_other", "other", 1);
    const group = ids.slice(0, 200);
    const { db, rowsRead } = meteredDb(env.DB);
    // An id of another namespace's object in the list shows nothing there.
    await showObjects(db, "ns_reads_show", [...group.map((id, i) => ({ object_id: id, task_ids: [`tsk_${i}`] })), { object_id: other[0]!, task_ids: ["tsk_x"] }]);
    expect(rowsRead()).toBeLessThan(group.length * 5);
    const { results } = await env.DB.prepare("SELECT object_id, state, task_ids FROM objects WHERE namespace_id IN ('ns_reads_show', 'ns_reads_other') ORDER BY object_id").all<{
      object_id: string;
      state: string;
      task_ids: string;
    }>();
    const byId = new Map(results.map((r) => [r.object_id, r]));
    group.forEach((id, i) => expect(byId.get(id)).toMatchObject({ state: "ready", task_ids: JSON.stringify([`tsk_${i}`]) }));
    expect(byId.get(ids[200]!)).toMatchObject({ state: "pending", task_ids: "[]" });
    expect(byId.get(other[0]!)).toMatchObject({ state: "pending", task_ids: "[]" });
  });

  it("reads the objects a batch of object_create tasks needs by id", async () => {
    const ids = await seedObjects("ns_reads_work", "work", 2000);
    const other = await seedObjects("ns_reads_work_other", "workother", 1);
    const wanted = [...ids.slice(100, 200), other[0]!, "obj_missing"];
    const { db, rowsRead } = meteredDb(env.DB);
    const { objects } = await workInputRows(db, "ns_reads_work", wanted, []);
    expect(rowsRead()).toBeLessThan(wanted.length * 5);
    expect([...objects.keys()].sort()).toEqual(ids.slice(100, 200));
    expect(objects.get(ids[150]!)).toEqual({ content: "text 150", metadata: { n: 150 } });
  });
});

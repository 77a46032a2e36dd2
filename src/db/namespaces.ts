import { DEFAULT_SETTINGS, type Settings } from "../tasks/model";
import { keysetPage, mapPage, newestFirst, type Page, type PageRequest } from "./keyset";

type TimeAndId = [string, string];

export interface Namespace {
  namespace_id: string;
  namespace_name: string;
  settings: Settings;
  created_at: string;
  updated_at: string;
}

interface NamespaceRow {
  namespace_id: string;
  namespace_name: string;
  settings: string;
  created_at: string;
  updated_at: string;
}

const toNamespace = (row: NamespaceRow): Namespace => ({
  namespace_id: row.namespace_id,
  namespace_name: row.namespace_name,
  settings: { ...DEFAULT_SETTINGS, ...(JSON.parse(row.settings) as Partial<Settings>) },
  created_at: row.created_at,
  updated_at: row.updated_at,
});

export async function insertNamespace(db: D1Database, ns: Namespace): Promise<void> {
  await db
    .prepare("INSERT INTO namespaces (namespace_id, namespace_name, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
    .bind(ns.namespace_id, ns.namespace_name, JSON.stringify(ns.settings), ns.created_at, ns.updated_at)
    .run();
}

/** Finds a namespace by id or by name. */
export async function findNamespace(db: D1Database, idOrName: string): Promise<Namespace | null> {
  const row = await db
    .prepare("SELECT * FROM namespaces WHERE namespace_id = ?1 OR namespace_name = ?1 LIMIT 1")
    .bind(idOrName)
    .first<NamespaceRow>();
  return row ? toNamespace(row) : null;
}

export async function updateNamespaceSettings(db: D1Database, namespaceId: string, settings: Settings, at: string): Promise<void> {
  await db
    .prepare("UPDATE namespaces SET settings = ?, updated_at = ? WHERE namespace_id = ?")
    .bind(JSON.stringify(settings), at, namespaceId)
    .run();
}

/** A page of namespaces, newest first. */
export async function listNamespaces(db: D1Database, req: PageRequest<TimeAndId>): Promise<Page<Namespace, TimeAndId>> {
  const position = (row: NamespaceRow): TimeAndId => [row.created_at, row.namespace_id];
  return mapPage(await keysetPage(db, newestFirst({ select: "*", from: "namespaces" }, {}, ["created_at", "namespace_id"], position), req), toNamespace);
}

const known = new Set<string>();

/** Whether a namespace exists; positive answers are remembered, since namespaces are never deleted. */
export async function namespaceExists(db: D1Database, namespaceId: string): Promise<boolean> {
  if (known.has(namespaceId)) return true;
  const found = (await db.prepare("SELECT 1 AS found FROM namespaces WHERE namespace_id = ?").bind(namespaceId).first("found")) !== null;
  if (found) {
    if (known.size > 10_000) known.clear();
    known.add(namespaceId);
  }
  return found;
}

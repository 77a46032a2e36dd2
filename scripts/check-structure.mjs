#!/usr/bin/env node
// Checks the shape of src/: imports go one way (see ALLOWED below) and never in a cycle.
// Plain Node, no dependency. Run by `npm test` after tsc, before vitest.
//
// Every import counts, type-only ones too: a type import still couples the two modules.
// Imports are found by a light scan, not a parser: static imports and re-exports must start a
// line (as everywhere here); `import("...")` is found anywhere.
// scripts/structure-allow.json lists known violations (debts). They are printed on every run
// but do not fail it; an entry whose import is gone fails the run, so the list only shrinks.
import { readdirSync, readFileSync, existsSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const SRC = path.join(ROOT, "src");
const ALLOW_FILE = path.join(ROOT, "scripts", "structure-allow.json");
const LONG_FILE_LINES = 300;

/** Modules at src/ top level that everything may import: they import only each other. */
const LEAVES = ["errors", "ids", "time", "cursor", "config"];

/**
 * What each part of src/ may import besides itself and LEAVES. A target is a part ("db") or one
 * module of a part ("namespace/stub", a file or a folder). A part not named here may import only
 * LEAVES. "*" means anything (the Worker's entry point wires everything together).
 */
const ALLOWED = {
  index: ["*"],
  api: ["namespace/contract", "namespace/stub", "namespace/messages", "dataplane", "db", "tasks", "webhooks", "dashboard", "docs"],
  // Processor dispatch signs like a webhook and obeys the same URL rules (SPEC §6).
  consumer: ["namespace/contract", "namespace/stub", "namespace/messages", "handlers", "tasks", "db", "webhooks"],
  handlers: ["dataplane", "db", "embed", "tasks"],
  namespace: ["db", "tasks", "webhooks", "embed"],
  // What spans D1 and the Durable Object: object creation and the tasks it causes.
  dataplane: ["db", "embed", "tasks", "namespace/contract", "namespace/stub", "namespace/messages"],
  db: ["tasks"],
  webhooks: ["tasks"],
  // The search cache reads documents from D1; db must not import embed back.
  embed: ["db", "tasks"],
  tasks: [],
  // The client and the CLI run outside the Worker: only the task model's types, nothing else.
  client: ["type:tasks"],
  cli: ["client", "type:tasks"],
  // The page's script shares the client's SSE parser, backoff and types; the page reads the Worker's Env type.
  dashboard: ["tasks", "client", "type:api/env"],
  // The API reference page and its script.
  docs: [],
};
for (const leaf of LEAVES) ALLOWED[leaf] = [];

// ---------------------------------------------------------------------------------------------

const rel = (file) => path.relative(ROOT, file).split(path.sep).join("/");

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(ts|tsx|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out.sort();
}

/** Comments removed, everything else kept in place (strings stay: they hold the specifiers). */
function withoutComments(text) {
  let out = "";
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === quote) quote = null;
      else if (c === "\n" && quote !== "`") quote = null; // an unterminated "string" was a regex
      continue;
    }
    if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const skipped = text.slice(i, end < 0 ? text.length : end + 2);
      out += skipped.replace(/[^\n]/g, " ");
      i = end < 0 ? text.length : end + 1;
    } else {
      if (c === '"' || c === "'" || c === "`") quote = c;
      out += c;
    }
  }
  return out;
}

/** The module specifiers a file imports, with whether each import is of types only. */
function importsOf(text) {
  const code = withoutComments(text);
  const found = [];
  // Static imports and re-exports start a line (as everywhere in this code base).
  const statement = /^[ \t]*(import|export)\b([^;]*?)\bfrom\s*(["'])([^"'\n]+)\3/gm;
  for (const m of code.matchAll(statement)) {
    const clause = m[2].trim();
    const braces = clause.match(/^\{([\s\S]*)\}$/);
    const allInlineTypes = braces !== null && braces[1].split(",").map((s) => s.trim()).filter(Boolean).every((s) => s.startsWith("type "));
    found.push({ specifier: m[4], typeOnly: /^type\b/.test(clause) || allInlineTypes });
  }
  for (const m of code.matchAll(/^[ \t]*import\s*(["'])([^"'\n]+)\1/gm)) found.push({ specifier: m[2], typeOnly: false });
  for (const m of code.matchAll(/\bimport\(\s*(["'])([^"'\n]+)\1\s*\)/g)) found.push({ specifier: m[2], typeOnly: false });
  return found;
}

function resolve(fromFile, specifier) {
  if (!specifier.startsWith(".")) return null; // a package: not part of src/'s structure
  const base = path.resolve(path.dirname(fromFile), specifier);
  const stem = base.replace(/\.(js|mjs|ts)$/, "");
  for (const candidate of [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.js`, `${stem}.mjs`, path.join(base, "index.ts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** "src/db/logs.ts" → { part: "db", module: "db/logs" }; "src/ids.ts" → { part: "ids", module: "ids" }. */
function placeOf(file) {
  const module = path.relative(SRC, file).split(path.sep).join("/").replace(/\.(ts|tsx|mts|js|mjs)$/, "");
  return { part: module.split("/")[0], module };
}

function allowed(from, to, typeOnly) {
  const a = placeOf(from);
  const b = placeOf(to);
  if (a.part === b.part || LEAVES.includes(b.part)) return true;
  for (const rule of ALLOWED[a.part] ?? []) {
    if (rule === "*") return true;
    const typesOnly = rule.startsWith("type:");
    const target = typesOnly ? rule.slice(5) : rule;
    if (typesOnly && !typeOnly) continue;
    if (b.part === target || b.module === target || b.module.startsWith(`${target}/`)) return true;
  }
  return false;
}

/** Every cycle's strongly connected component (Tarjan), each with one cycle through it to show. */
function cycles(graph) {
  let index = 0;
  const stack = [];
  const info = new Map();
  const components = [];
  const visit = (v) => {
    info.set(v, { index, low: index, onStack: true });
    index++;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!info.has(w)) {
        visit(w);
        info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
      } else if (info.get(w).onStack) {
        info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
      }
    }
    if (info.get(v).low === info.get(v).index) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        info.get(w).onStack = false;
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? new Set()).has(v)) components.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!info.has(v)) visit(v);
  return components.map((component) => ({ files: component, example: shortestCycle(graph, component) }));
}

/** The shortest cycle through a component's first file, by breadth-first search inside it. */
function shortestCycle(graph, component) {
  const members = new Set(component);
  const start = component[0];
  const previous = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let p = previous.get(v); p !== null; p = previous.get(p)) path.unshift(p);
        return [...path, start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return component;
}

// ---------------------------------------------------------------------------------------------

const files = sourceFiles(SRC);
const edges = []; // { from, to, typeOnly } between files of src/
const problems = [];
const longFiles = [];
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  if (lines > LONG_FILE_LINES) longFiles.push({ file: rel(file), lines });
  const seen = new Map();
  for (const { specifier, typeOnly } of importsOf(text)) {
    const target = resolve(file, specifier);
    if (target === null) continue;
    if (target === undefined) {
      problems.push(`unresolved import  ${rel(file)} imports "${specifier}", which is no file`);
      continue;
    }
    if (!target.startsWith(SRC + path.sep)) {
      problems.push(`import out of src/  ${rel(file)} → ${rel(target)}`);
      continue;
    }
    // One edge a pair; it is type-only only if every import of the pair is.
    seen.set(target, (seen.get(target) ?? true) && typeOnly);
  }
  for (const [to, typeOnly] of seen) edges.push({ from: file, to, typeOnly });
}

const allowList = existsSync(ALLOW_FILE) ? JSON.parse(readFileSync(ALLOW_FILE, "utf8")) : { allowed: [] };
const allowKey = (from, to) => `${from} -> ${to}`;
const allowedEdges = new Map(allowList.allowed.map((entry) => [allowKey(entry.from, entry.to), entry]));
const usedAllowances = new Set();
const debts = [];

const edgeLabel = (e) => `${rel(e.from)} → ${rel(e.to)}${e.typeOnly ? " (types only)" : ""}`;
const graph = new Map(files.map((f) => [f, new Set()]));
for (const e of edges) {
  const key = allowKey(rel(e.from), rel(e.to));
  const known = allowedEdges.get(key);
  if (known) {
    // A known debt: leave it out of the direction check and of the cycle search, and show it.
    usedAllowances.add(key);
    debts.push(`${edgeLabel(e)}: ${known.why}`);
    continue;
  }
  graph.get(e.from).add(e.to);
  if (!allowed(e.from, e.to, e.typeOnly)) {
    const a = placeOf(e.from).part;
    const may = [...(ALLOWED[a] ?? []), "its own part", ...LEAVES].join(", ");
    problems.push(`import against the directions  ${edgeLabel(e)}   [${a} may import only: ${may}]`);
  }
}
for (const cycle of cycles(graph)) {
  problems.push(`import cycle  ${cycle.example.map(rel).join(" → ")}${cycle.files.length > cycle.example.length - 1 ? `   [all ${cycle.files.length} files of the cycle: ${cycle.files.map(rel).join(", ")}]` : ""}`);
}
for (const entry of allowList.allowed) {
  if (!usedAllowances.has(allowKey(entry.from, entry.to))) {
    problems.push(`stale allow-list entry  ${entry.from} -> ${entry.to} is no import any more: remove it from ${rel(ALLOW_FILE)}`);
  }
}

console.log(`check-structure: ${files.length} files and ${edges.length} imports in src/`);
if (debts.length > 0) {
  console.log(`known debts (${debts.length}, listed in ${rel(ALLOW_FILE)}; each one is to be removed):`);
  for (const d of debts) console.log(`  debt  ${d}`);
}
longFiles.sort((a, b) => b.lines - a.lines);
console.log(`files over ${LONG_FILE_LINES} lines in src/: ${longFiles.length}`);
for (const f of longFiles) console.log(`  ${String(f.lines).padStart(5)}  ${f.file}`);
if (problems.length > 0) {
  console.log(`structure check FAILED: ${problems.length} violation(s) (fix each, or, for a debt the lead accepts, list it in ${rel(ALLOW_FILE)})`);
  for (const p of problems) console.log(`  FAIL  ${p}`);
  process.exit(1);
}
console.log("structure check passed: imports go one way and form no cycle");

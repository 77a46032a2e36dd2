// What `npm run bench` prints at its end: the counts per task of each path with the ceilings
// they imply (bench/ceilings.mjs), and the summary of every figure of issues 11 and 14 against
// its aim.
import { ceilings, formatFigure, perTask } from "./ceilings.mjs";

const MET = { ">=": (m, v) => m >= v, "<=": (m, v) => m <= v, "<": (m, v) => m < v };

/** Prints rows (arrays of strings) as an aligned table with a header rule. */
export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `  ${cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  │  ")}`;
  console.log(line(header));
  console.log(`  ${widths.map((w) => "─".repeat(w)).join("──┼──")}`);
  for (const row of rows) console.log(line(row));
}

const methods = (byMethod) =>
  Object.entries(byMethod)
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${name} ${n.toFixed(2)}`)
    .join(", ");

export function createReport() {
  /** {name, measured, unit, aim: {op, value} | null, note} */
  const figures = [];
  /** {path, cost, ceiling} */
  const paths = [];
  return {
    /** A figure for the summary; `measured` null means the part did not run or did not print it. */
    figure(name, measured, aim = null, unit = "") {
      figures.push({ name, measured, aim, unit });
    },

    /** Counts of a window in which `tasks` tasks went through `path`, printed beside its rate. */
    cost(path, counts, tasks) {
      const cost = perTask(counts, tasks);
      const ceiling = ceilings(cost);
      paths.push({ path, cost, ceiling });
      console.log(
        `    counted per task: ${formatFigure(cost.doRequests)} Durable Object requests, ${formatFigure(cost.d1Statements)} D1 statements` +
          ` (${formatFigure(cost.d1StatementsFromObject)} from the object, in ${formatFigure(cost.d1Calls)} round trips), ${formatFigure(cost.queueMessages)} queue messages`,
      );
      console.log(`      by method: ${methods(cost.byMethod) || "none"}`);
      return cost;
    },

    costOf(path) {
      return paths.find((p) => p.path === path)?.cost ?? null;
    },

    print() {
      if (paths.length > 0) {
        console.log("\nCounts per task and the ceilings they imply (tasks/s; 1 000 requests/s per Durable Object, 5 000 messages/s per queue, 1 000 D1 queries/s):\n");
        printTable(
          ["path", "tasks", "DO req", "D1 stmts", "queue msgs", "namespace", "queue", "database", "ceiling"],
          paths.map(({ path, cost, ceiling }) => [
            path,
            String(cost.tasks),
            formatFigure(cost.doRequests),
            formatFigure(cost.d1Statements),
            formatFigure(cost.queueMessages),
            formatFigure(ceiling.namespace),
            formatFigure(ceiling.queue),
            formatFigure(ceiling.database),
            formatFigure(ceiling.overall),
          ]),
        );
      }
      console.log("\nSummary:\n");
      if (figures.length === 0) {
        console.log("  (the parts run have no figure of issues 11 and 14)");
        return;
      }
      printTable(
        ["figure", "measured", "aim", "met?"],
        figures.map(({ name, measured, aim, unit }) => {
          const shown = measured === null || measured === undefined ? "not measured" : `${formatFigure(measured)}${unit}`;
          const aimText = aim ? `${aim.op.replace(">=", "≥").replace("<=", "≤")} ${aim.value}${unit}` : "—";
          const met = !aim ? "—" : measured === null || measured === undefined ? "?" : MET[aim.op](measured, aim.value) ? "yes" : "NO";
          return [name, shown, aimText, met];
        }),
      );
    },
  };
}

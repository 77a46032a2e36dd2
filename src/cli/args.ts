/** A usage mistake: reported with the command's help, exit code 2. */
export class UsageError extends Error {}

export interface Parsed {
  positionals: string[];
  flags: Map<string, string | true>;
}

/**
 * Parses `--name value`, `--name=value`, boolean `--name`, `-f`-style short aliases and
 * positionals; `--` ends the options. Only the names in `booleans` and `values` are accepted.
 */
export function parseArgs(argv: readonly string[], spec: { booleans: readonly string[]; values: readonly string[]; aliases?: Record<string, string> }): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    let name = arg.startsWith("--") ? arg.slice(2, eq === -1 ? undefined : eq) : (spec.aliases?.[arg.slice(1)] ?? "");
    if (!arg.startsWith("--") && eq !== -1) name = "";
    if (spec.booleans.includes(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      flags.set(name, true);
    } else if (spec.values.includes(name)) {
      const value = eq !== -1 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === "") throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
    } else {
      throw new UsageError(`unknown option ${arg}`);
    }
  }
  return { positionals, flags };
}

/** A flag's value as a positive number within bounds, or undefined when absent. */
export function numberFlag(parsed: Parsed, name: string, min: number, max: number): number | undefined {
  const raw = parsed.flags.get(name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw === true || !Number.isFinite(value) || value < min || value > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}`);
  return value;
}

export const stringFlag = (parsed: Parsed, name: string): string | undefined => {
  const raw = parsed.flags.get(name);
  return typeof raw === "string" ? raw : undefined;
};

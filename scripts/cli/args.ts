/**
 * The operator scripts' argument parser: commands and flags are described by
 * specs ({@link CommandSpec}, {@link FlagSpec}), parsed by {@link parseArgs}
 * (on `node:util`'s tokens) and rendered as `--help` text from the same specs.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { formatDuration, parseBytes, parseDuration, parseIntStrict } from "./units.ts";

/** The kinds of values a flag takes; parsed values are strings, booleans or numbers (ms, bytes). */
export type FlagType = "string" | "boolean" | "int" | "number" | "duration" | "bytes";

/** One flag of a command (or a global flag). */
export interface FlagSpec {
  /** How the value is parsed: `duration` gives milliseconds, `bytes` gives bytes. */
  type: FlagType;
  /** One-line help. */
  help: string;
  /** Single-letter short form, e.g. `"f"` for `-f`. */
  short?: string;
  /** Other long names accepted for the flag. */
  aliases?: string[];
  /** Value used when the flag is absent. */
  default?: string | number | boolean;
  /** Allowed values of a `string` flag. */
  choices?: string[];
  /** Smallest accepted `int` or `number`. */
  min?: number;
  /** Largest accepted `int` or `number`. */
  max?: number;
  /** Placeholder shown in help, e.g. `DURATION`. */
  placeholder?: string;
}

/** One positional argument. */
export interface ArgSpec {
  /** Name shown in usage. */
  name: string;
  /** One-line help. */
  help: string;
  /** Whether the command refuses to run without it. */
  required?: boolean;
}

/** A (sub)command: its names, positional arguments and flags. */
export interface CommandSpec {
  /** Name typed on the command line. */
  name: string;
  /** Other names for it. */
  aliases?: string[];
  /** One-line description. */
  summary: string;
  /** Longer text shown by `--help`. */
  description?: string;
  /** Positional arguments, in order. */
  args: ArgSpec[];
  /** Flags by long name. */
  flags: Record<string, FlagSpec>;
}

/** Parsed flag values by long name. */
export type FlagValues = Record<string, string | number | boolean | undefined>;

/** The result of {@link parseArgs}. */
export interface ParsedArgs {
  /** Positional arguments after the command name (a lone `-` is positional). */
  positionals: string[];
  /** Values of the flags given or defaulted, by long name. */
  flags: FlagValues;
  /** Whether `--help`/`-h` was given. */
  help: boolean;
}

/**
 * Parses `argv` against `specs` (later specs may repeat none of the earlier
 * names). Flags may come before or after positionals; `--` ends the flags.
 * Throws {@link UsageError} for anything it cannot make sense of.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * const p = parseArgs(["--history", "5", "demo"], [{ history: { type: "int", help: "" } }]);
 * console.log(p.flags.history, p.positionals); // 5 ["demo"]
 * ```
 */
export function parseArgs(argv: string[], specs: Record<string, FlagSpec>[]): ParsedArgs {
  const table = flagTable(specs);
  const flags: FlagValues = {};
  for (const spec of specs) {
    for (const [name, flag] of Object.entries(spec)) {
      if (flag.default !== undefined) flags[name] = flag.default;
    }
  }
  const { tokens } = nodeParseArgs({
    args: argv,
    options: table.options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const positionals: string[] = [];
  let help = false;
  let skip = -1; // the index of an argument already taken whole (a negative number)
  for (const t of tokens) {
    if (t.index === skip) continue;
    if (t.kind === "option-terminator") {
      // node:util reads the "-" in a cluster such as "-f-" as a "--": it is a letter no flag has.
      if (argv[t.index] !== "--") throw new UsageError("unknown flag --");
      positionals.push(...argv.slice(t.index + 1));
      break;
    }
    const arg = argv[t.index]!;
    if (t.kind === "positional") {
      positionals.push(t.value);
    } else if (arg === "--help" || arg === "-h") {
      help = true;
    } else if (t.rawName.startsWith("--")) {
      longFlag(arg, t, { byName: table.byName, flags });
    } else if (/^-\d/.test(arg)) {
      // A negative number is an argument, not a cluster of short flags.
      positionals.push(arg);
      skip = t.index;
    } else {
      shortFlag(t, { byShort: table.byShort, flags });
    }
  }
  return { positionals, flags, help };
}

/** A flag's canonical name and spec, by one of the names it answers to. */
type FlagEntry = [string, FlagSpec];

/** An option token of node:util's `parseArgs`. */
type OptionToken = {
  kind: "option";
  index: number;
  rawName: string;
  value: string | undefined;
  inlineValue: boolean | undefined;
};

/**
 * Every flag by long name (aliases included) and by short letter, and the
 * table node:util splits argv with: it splits argv into tokens (long and
 * short options, inline values, clustered shorts, `--`); what each flag
 * means and every message is ours.
 */
function flagTable(specs: Record<string, FlagSpec>[]): {
  byName: Map<string, FlagEntry>;
  byShort: Map<string, FlagEntry>;
  options: Record<string, { type: "string" | "boolean"; short?: string }>;
} {
  const byName = new Map<string, FlagEntry>();
  const byShort = new Map<string, FlagEntry>();
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const spec of specs) {
    for (const [name, flag] of Object.entries(spec)) {
      const type = flag.type === "boolean" ? "boolean" : "string";
      for (const n of [name, ...flag.aliases ?? []]) {
        byName.set(n, [name, flag]);
        options[n] = { type };
      }
      if (flag.short) {
        byShort.set(flag.short, [name, flag]);
        options[name]!.short = flag.short;
      }
    }
  }
  return { byName, byShort, options };
}

/** Sets the flag of a `--name`, `--name=value`, `--name value` or `--no-name` argument. */
function longFlag(
  arg: string,
  t: OptionToken,
  ctx: { byName: Map<string, FlagEntry>; flags: FlagValues },
): void {
  const eq = arg.indexOf("=");
  const rawName = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
  let entry = ctx.byName.get(rawName);
  let negated = false;
  if (!entry && rawName.startsWith("no-")) {
    const positive = ctx.byName.get(rawName.slice(3));
    if (positive && positive[1].type === "boolean") {
      entry = positive;
      negated = true;
    }
  }
  if (!entry) throw new UsageError(`unknown flag --${rawName}`);
  const [name, flag] = entry;
  if (flag.type === "boolean") {
    if (t.inlineValue) {
      const v = t.value!;
      if (v !== "true" && v !== "false") {
        throw new UsageError(`flag --${rawName} takes true or false, got ${JSON.stringify(v)}`);
      }
      ctx.flags[name] = (v === "true") !== negated;
    } else {
      ctx.flags[name] = !negated;
    }
    return;
  }
  if (t.value === undefined) throw new UsageError(`flag --${rawName} needs a value`);
  ctx.flags[name] = parseFlagValue(`--${rawName}`, flag, t.value);
}

/** Sets the flag of a `-x` or `-x value` argument (one letter of a cluster). */
function shortFlag(
  t: OptionToken,
  ctx: { byShort: Map<string, FlagEntry>; flags: FlagValues },
): void {
  const letter = t.rawName.slice(1);
  const entry = ctx.byShort.get(letter);
  if (!entry) throw new UsageError(`unknown flag -${letter}`);
  const [name, flag] = entry;
  if (flag.type === "boolean") {
    ctx.flags[name] = true;
    return;
  }
  if (t.value === undefined) throw new UsageError(`flag -${letter} needs a value`);
  ctx.flags[name] = parseFlagValue(`-${letter}`, flag, t.value);
}

function parseFlagValue(shown: string, flag: FlagSpec, value: string): string | number {
  switch (flag.type) {
    case "string":
      if (flag.choices && !flag.choices.includes(value)) {
        throw new UsageError(
          `flag ${shown} must be one of ${flag.choices.join(", ")}, got ${JSON.stringify(value)}`,
        );
      }
      return value;
    case "int": {
      const n = parseIntStrict(value);
      if (n === undefined) {
        throw new UsageError(`flag ${shown} takes an integer, got ${JSON.stringify(value)}`);
      }
      if (flag.min !== undefined && n < flag.min) {
        throw new UsageError(`flag ${shown} must be at least ${flag.min}, got ${n}`);
      }
      if (flag.max !== undefined && n > flag.max) {
        throw new UsageError(`flag ${shown} must be at most ${flag.max}, got ${n}`);
      }
      return n;
    }
    case "number": {
      const n = value.trim() === "" ? NaN : Number(value);
      if (!Number.isFinite(n)) {
        throw new UsageError(`flag ${shown} takes a number, got ${JSON.stringify(value)}`);
      }
      if (flag.min !== undefined && n < flag.min) {
        throw new UsageError(`flag ${shown} must be at least ${flag.min}, got ${n}`);
      }
      if (flag.max !== undefined && n > flag.max) {
        throw new UsageError(`flag ${shown} must be at most ${flag.max}, got ${n}`);
      }
      return n;
    }
    case "duration": {
      const ms = parseDuration(value);
      if (ms === undefined) {
        throw new UsageError(
          `flag ${shown} takes a duration like 500ms, 30s, 5m, 1h or 1h30m, got ${
            JSON.stringify(value)
          }`,
        );
      }
      return ms;
    }
    case "bytes": {
      const n = parseBytes(value);
      if (n === undefined) {
        throw new UsageError(
          `flag ${shown} takes a size like 1024, 512B, 64KiB, 1MB or 2G, got ${
            JSON.stringify(value)
          }`,
        );
      }
      return n;
    }
    default:
      throw new UsageError(`flag ${shown} does not take a value`);
  }
}

function flagUsage(name: string, flag: FlagSpec): string {
  const names = [flag.short ? `-${flag.short}, --${name}` : `    --${name}`];
  for (const a of flag.aliases ?? []) names.push(`--${a}`);
  const ph = flag.type === "boolean"
    ? ""
    : ` ${flag.placeholder ?? (flag.choices ? flag.choices.join("|") : flag.type.toUpperCase())}`;
  return names.join(", ") + ph;
}

/**
 * Renders the flags of `spec` as aligned help lines.
 *
 * @example
 * ```ts
 * import { flagsHelp } from "./args.ts";
 * console.log(flagsHelp({ json: { type: "boolean", help: "machine-readable output" } }));
 * ```
 */
export function flagsHelp(spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([name, flag]) => {
    const dflt = flag.default !== undefined && flag.default !== false
      ? ` (default ${
        flag.type === "duration" ? formatDuration(flag.default as number) : flag.default
      })`
      : "";
    return [flagUsage(name, flag), flag.help + dflt];
  });
  const width = Math.max(0, ...rows.map((r) => r[0]!.length));
  return rows.map(([u, h]) => `  ${u!.padEnd(width)}  ${h}`).join("\n");
}

/**
 * Renders `--help` for one command of `program`.
 *
 * @example
 * ```ts
 * import { commandHelp } from "./args.ts";
 * console.log(commandHelp("deno task kv", { name: "ls", summary: "list buckets", args: [], flags: {} }, {}));
 * ```
 */
export function commandHelp(
  program: string,
  cmd: CommandSpec,
  globals: Record<string, FlagSpec>,
): string {
  const args = cmd.args.map((a) => (a.required ? `<${a.name}>` : `[${a.name}]`)).join(" ");
  const lines = [
    `usage: ${program}${cmd.name ? " " + cmd.name : ""}${args ? " " + args : ""} [flags]`,
    "",
    cmd.description ?? cmd.summary,
  ];
  if (cmd.aliases?.length) lines.push("", `aliases: ${cmd.aliases.join(", ")}`);
  if (cmd.args.length) {
    const w = Math.max(...cmd.args.map((a) => a.name.length));
    lines.push("", "arguments:", ...cmd.args.map((a) => `  ${a.name.padEnd(w)}  ${a.help}`));
  }
  if (Object.keys(cmd.flags).length) lines.push("", "flags:", flagsHelp(cmd.flags));
  lines.push("", "global flags:", flagsHelp(globals));
  return lines.join("\n");
}

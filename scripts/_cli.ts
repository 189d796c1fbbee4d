/**
 * Shared plumbing of the operator scripts (`scripts/kv.ts`, `scripts/seed.ts`):
 * a small spec-driven argument parser, the global connection flags, duration
 * and byte-size parsing, aligned tables, and the one-line error exit.
 *
 * @module
 */
import { connectNats } from "../src/connect.ts";
import {
  AuthorizationError,
  ConnectionError,
  type NatsConnection,
  NoRespondersError,
  PermissionViolationError,
  TimeoutError,
} from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";
import { findEmbedded } from "../host/embedded.ts";
import { natsConnectionOptions, parseNatsEnv, redactSecrets } from "../host/nats_env.ts";

/**
 * Where the embedded server of `deno task serve` keeps its data (and its address file).
 *
 * @example
 * ```ts
 * import { EMBEDDED_DATA_DIR } from "./_cli.ts";
 * console.log(`${EMBEDDED_DATA_DIR}/nats/embedded.json`);
 * ```
 */
export const EMBEDDED_DATA_DIR = ".data";

/**
 * The address used when nothing else names a server.
 *
 * @example
 * ```ts
 * import { DEFAULT_SERVER } from "./_cli.ts";
 * console.log(DEFAULT_SERVER); // "nats://127.0.0.1:4222"
 * ```
 */
export const DEFAULT_SERVER = "nats://127.0.0.1:4222";

/**
 * A mistake in the command line: reported on one line with exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./_cli.ts";
 * throw new UsageError('unknown command "frob"');
 * ```
 */
export class UsageError extends Error {
  /** Builds a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A failure that has already been described for the user: one line, exit code 1.
 *
 * @example
 * ```ts
 * import { CliError } from "./_cli.ts";
 * throw new CliError('bucket "demo" does not exist');
 * ```
 */
export class CliError extends Error {
  /** Process exit code, 1 unless told otherwise. */
  readonly exitCode: number;
  /** Builds the error. */
  constructor(message: string, options?: { exitCode?: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "CliError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

// ---------------------------------------------------------------------------
// Argument parsing

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
 * import { parseArgs } from "./_cli.ts";
 * const p = parseArgs(["--history", "5", "demo"], [{ history: { type: "int", help: "" } }]);
 * console.log(p.flags.history, p.positionals); // 5 ["demo"]
 * ```
 */
export function parseArgs(argv: string[], specs: Record<string, FlagSpec>[]): ParsedArgs {
  const byName = new Map<string, [string, FlagSpec]>();
  const byShort = new Map<string, [string, FlagSpec]>();
  for (const spec of specs) {
    for (const [name, flag] of Object.entries(spec)) {
      byName.set(name, [name, flag]);
      for (const alias of flag.aliases ?? []) byName.set(alias, [name, flag]);
      if (flag.short) byShort.set(flag.short, [name, flag]);
    }
  }
  const flags: FlagValues = {};
  for (const spec of specs) {
    for (const [name, flag] of Object.entries(spec)) {
      if (flag.default !== undefined) flags[name] = flag.default;
    }
  }
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const rawName = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      let entry = byName.get(rawName);
      let negated = false;
      if (!entry && rawName.startsWith("no-")) {
        const positive = byName.get(rawName.slice(3));
        if (positive && positive[1].type === "boolean") {
          entry = positive;
          negated = true;
        }
      }
      if (!entry) throw new UsageError(`unknown flag --${rawName}`);
      const [name, flag] = entry;
      if (flag.type === "boolean") {
        if (eq !== -1) {
          const v = arg.slice(eq + 1);
          if (v !== "true" && v !== "false") {
            throw new UsageError(`flag --${rawName} takes true or false, got ${JSON.stringify(v)}`);
          }
          flags[name] = (v === "true") !== negated;
        } else {
          flags[name] = !negated;
        }
        continue;
      }
      let value: string;
      if (eq !== -1) {
        value = arg.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`flag --${rawName} needs a value`);
        value = argv[++i]!;
      }
      flags[name] = parseFlagValue(`--${rawName}`, flag, value);
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      // Clustered short booleans (`-fn`) and `-s URL` / `-sURL`.
      for (let j = 1; j < arg.length; j++) {
        const letter = arg[j]!;
        const entry = byShort.get(letter);
        if (!entry) throw new UsageError(`unknown flag -${letter}`);
        const [name, flag] = entry;
        if (flag.type === "boolean") {
          flags[name] = true;
          continue;
        }
        let value = arg.slice(j + 1);
        if (value === "") {
          if (i + 1 >= argv.length) throw new UsageError(`flag -${letter} needs a value`);
          value = argv[++i]!;
        }
        flags[name] = parseFlagValue(`-${letter}`, flag, value);
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { positionals, flags, help };
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

/**
 * Parses a non-negative decimal integer with nothing around it (no `1e3`, no `0x`).
 *
 * @example
 * ```ts
 * import { parseIntStrict } from "./_cli.ts";
 * console.log(parseIntStrict("42"), parseIntStrict("4.2")); // 42 undefined
 * ```
 */
export function parseIntStrict(text: string): number | undefined {
  if (!/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a Go-style duration (`500ms`, `30s`, `1h30m`, also `d` and `w`) into
 * milliseconds; `0` alone is zero. Returns `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./_cli.ts";
 * console.log(parseDuration("1h30m"), parseDuration("500ms")); // 5400000 500
 * ```
 */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return text.length === 0 ? undefined : total;
}

/**
 * Formats milliseconds compactly, the inverse of {@link parseDuration}
 * (`1h30m`, `30s`, `500ms`).
 *
 * @example
 * ```ts
 * import { formatDuration } from "./_cli.ts";
 * console.log(formatDuration(5_400_000)); // "1h30m"
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms);
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) {
    const s = rest / 1000;
    parts.push(`${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, "")}s`);
  }
  return parts.join("");
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/**
 * Parses a size the way `nats` does (binary multiples: `1K` = `1KB` = 1024);
 * `-1` means unlimited. Returns `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import { parseBytes } from "./_cli.ts";
 * console.log(parseBytes("64KiB"), parseBytes("1M")); // 65536 1048576
 * ```
 */
export function parseBytes(text: string): number | undefined {
  if (text.trim() === "-1") return -1;
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (!m) return undefined;
  const mult = BYTE_UNITS[m[2]!.toUpperCase()];
  if (mult === undefined) return undefined;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Formats a byte count with binary units (`512 B`, `1.5 KiB`).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./_cli.ts";
 * console.log(formatBytes(1536)); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// ---------------------------------------------------------------------------
// Help text

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
 * import { flagsHelp } from "./_cli.ts";
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
 * import { commandHelp } from "./_cli.ts";
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

// ---------------------------------------------------------------------------
// Connection

/**
 * Flags every script accepts for reaching NATS, plus `--json`.
 *
 * @example
 * ```ts
 * import { GLOBAL_FLAGS, parseArgs } from "./_cli.ts";
 * console.log(parseArgs(["-s", "nats://127.0.0.1:4333"], [GLOBAL_FLAGS]).flags.server);
 * ```
 */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  server: {
    type: "string",
    short: "s",
    placeholder: "URL",
    help:
      "NATS server URL(s), comma-separated (default $NATS_URL, else the embedded server of `deno task serve`, else nats://127.0.0.1:4222)",
  },
  creds: {
    type: "string",
    placeholder: "FILE",
    help: "user credentials file (default $NATS_CREDS)",
  },
  user: { type: "string", placeholder: "USER", help: "user name (default $NATS_USER)" },
  password: { type: "string", placeholder: "PASSWORD", help: "password (default $NATS_PASSWORD)" },
  token: { type: "string", placeholder: "TOKEN", help: "auth token (default $NATS_TOKEN)" },
  timeout: {
    type: "duration",
    default: 5000,
    placeholder: "DURATION",
    help: "how long to wait for NATS on connect and on each request",
  },
  json: { type: "boolean", help: "machine-readable JSON output" },
};

/** Connection settings taken from the global flags and the environment. */
export interface ConnectFlags {
  /** `--server`, if given. */
  server?: string;
  /** `--creds`, if given. */
  creds?: string;
  /** `--user`, if given. */
  user?: string;
  /** `--password`, if given. */
  password?: string;
  /** `--token`, if given. */
  token?: string;
  /** Connect and request timeout in milliseconds. Default 5 000. */
  timeoutMs?: number;
  /** Program name prefixed to the notice naming a server chosen by default (`kv`, `seed`). */
  program?: string;
}

/**
 * Reads {@link ConnectFlags} out of parsed flags.
 *
 * @example
 * ```ts
 * import { connectFlags, GLOBAL_FLAGS, parseArgs } from "./_cli.ts";
 * const { flags } = parseArgs(["--user", "ops"], [GLOBAL_FLAGS]);
 * console.log(connectFlags(flags).user); // "ops"
 * ```
 */
export function connectFlags(flags: FlagValues): ConnectFlags {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    server: str(flags.server),
    creds: str(flags.creds),
    user: str(flags.user),
    password: str(flags.password),
    token: str(flags.token),
    timeoutMs: typeof flags.timeout === "number" ? flags.timeout : 5000,
  };
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

/**
 * Decides which server to talk to: `--server`, else `$NATS_URL`, else the
 * embedded server of a running `deno task serve` (found under `.data/`), else
 * {@link DEFAULT_SERVER}.
 *
 * @example
 * ```ts
 * import { resolveServer } from "./_cli.ts";
 * console.log(await resolveServer("nats://127.0.0.1:4333")); // "nats://127.0.0.1:4333"
 * ```
 */
export async function resolveServer(flag?: string): Promise<string> {
  return (await chooseServer(flag)).server;
}

/** Where {@link chooseServer} found the server. */
export type ServerSource = "flag" | "env" | "embedded" | "default";

/**
 * {@link resolveServer}, and where the answer came from: `--server`,
 * `$NATS_URL`, the embedded server of `deno task serve`, or the default.
 *
 * @example
 * ```ts
 * import { chooseServer } from "./_cli.ts";
 * console.log(await chooseServer("nats://127.0.0.1:4333")); // { server: "nats://127.0.0.1:4333", from: "flag" }
 * ```
 */
export async function chooseServer(flag?: string): Promise<{ server: string; from: ServerSource }> {
  if (flag) return { server: redactSecrets(flag), from: "flag" };
  const fromEnv = env("NATS_URL");
  if (fromEnv) return { server: redactSecrets(fromEnv), from: "env" };
  try {
    const embedded = await findEmbedded(EMBEDDED_DATA_DIR);
    if (embedded) return { server: embedded, from: "embedded" };
  } catch {
    // An unreadable .data/ just means there is no embedded server to use.
  }
  return { server: DEFAULT_SERVER, from: "default" };
}

/**
 * Connects as the flags say. Connection failures become a one-line
 * {@link CliError} naming the server.
 *
 * @example
 * ```ts ignore
 * import { connectFromFlags } from "./_cli.ts";
 * const nc = await connectFromFlags({ server: "nats://127.0.0.1:4222" });
 * await nc.close();
 * ```
 */
export async function connectFromFlags(f: ConnectFlags): Promise<NatsConnection> {
  let environment: Record<string, string>;
  try {
    environment = Deno.env.toObject();
  } catch {
    environment = {}; // no --allow-env: flags only
  }
  let opts;
  let servers: string[];
  try {
    // One parser for the worker, the projector and the CLI; flags win.
    const nats = parseNatsEnv(environment, {
      action: "connect",
      overrides: {
        ...(f.server ? { server: f.server } : {}),
        ...(f.user !== undefined ? { user: f.user } : {}),
        ...(f.password !== undefined ? { password: f.password } : {}),
        ...(f.token !== undefined ? { token: f.token } : {}),
        ...(f.creds !== undefined ? { creds: f.creds } : {}),
      },
    });
    opts = await natsConnectionOptions(nats, { action: "connect" });
    if (nats.servers !== undefined) servers = nats.servers;
    else {
      const { server, from } = await chooseServer();
      // A server nobody named is a guess: say which one, so a wrong guess is visible.
      const who = f.program ? `${f.program}: ` : "";
      if (from === "embedded") {
        eprintln(`${who}using the embedded nats-server of \`deno task serve\` at ${server}`);
      } else if (from === "default") {
        eprintln(
          `${who}using ${server}: no --server, no NATS_URL, no running \`deno task serve\` under ` +
            `${EMBEDDED_DATA_DIR}/`,
        );
      }
      servers = [server];
    }
  } catch (err) {
    throw new CliError(oneLine(err).replace(/^Cannot connect: /, ""), { cause: err });
  }
  try {
    return await connectNats({
      ...opts,
      servers,
      name: "kvedge-cli",
      timeout: f.timeoutMs ?? 5000,
    });
  } catch (err) {
    throw new CliError(`cannot connect to ${servers.join(",")}: ${oneLine(err)}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// Output

/**
 * Lays rows out as a left-aligned table with a header row, columns separated
 * by two spaces, no trailing blanks.
 *
 * @example
 * ```ts
 * import { formatTable } from "./_cli.ts";
 * console.log(formatTable(["Key", "Revision"], [["a", "1"], ["bb", "12"]]));
 * ```
 */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/**
 * Lays out label/value pairs with right-aligned labels, as `nats kv info` does.
 *
 * @example
 * ```ts
 * import { formatColumns } from "./_cli.ts";
 * console.log(formatColumns([["Bucket Name", "demo"], ["History Kept", "5"]]));
 * ```
 */
export function formatColumns(rows: [string, string][]): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padStart(width)}: ${v}`).join("\n");
}

const encoder = new TextEncoder();

/**
 * Writes `text` and a newline to stdout, synchronously, so output is complete before an exit.
 *
 * @example
 * ```ts
 * import { println } from "./_cli.ts";
 * println("done");
 * ```
 */
export function println(text = ""): void {
  writeAllSync(Deno.stdout, encoder.encode(text + "\n"));
}

/**
 * Writes `text` and a newline to stderr, synchronously.
 *
 * @example
 * ```ts
 * import { eprintln } from "./_cli.ts";
 * eprintln("seed: line 3: invalid JSON");
 * ```
 */
export function eprintln(text: string): void {
  writeAllSync(Deno.stderr, encoder.encode(text + "\n"));
}

/**
 * Writes all of `bytes` to a synchronous writer (stdout/stderr); one `writeSync` may write less.
 *
 * @example
 * ```ts
 * import { writeAllSync } from "./_cli.ts";
 * writeAllSync(Deno.stdout, new TextEncoder().encode("raw bytes\n"));
 * ```
 */
export function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/**
 * Whether `bytes` are text worth printing as is: valid UTF-8 without control
 * characters other than tab, CR and LF. Anything else is shown as base64.
 *
 * @example
 * ```ts
 * import { isPrintable } from "./_cli.ts";
 * console.log(isPrintable(new TextEncoder().encode("héllo"))); // true
 * ```
 */
export function isPrintable(bytes: Uint8Array): boolean {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  // deno-lint-ignore no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

/**
 * Encodes bytes as standard base64.
 *
 * @example
 * ```ts
 * import { toBase64 } from "./_cli.ts";
 * console.log(toBase64(new Uint8Array([0, 1, 2, 255]))); // "AAEC/w=="
 * ```
 */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Quotes a user-supplied name for an error message: JSON-escaped (so the
 * message stays on one line) and at most 64 characters.
 *
 * @example
 * ```ts
 * import { quote } from "./_cli.ts";
 * console.log(quote("a\nb")); // "\"a\\nb\""
 * ```
 */
export function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? text.slice(0, 64) + "…" : text);
}

// ---------------------------------------------------------------------------
// Errors and exit

/**
 * Describes any error on one line, turning the NATS client's errors into
 * something an operator can act on.
 *
 * @example
 * ```ts
 * import { oneLine } from "./_cli.ts";
 * console.log(oneLine(new Error("boom\nmore"))); // "boom more"
 * ```
 */
export function oneLine(err: unknown): string {
  let msg: string;
  if (err instanceof TimeoutError) {
    msg = "timed out waiting for NATS";
  } else if (err instanceof NoRespondersError) {
    msg = "no responders (is JetStream enabled, and does the bucket exist?)";
  } else if (err instanceof PermissionViolationError || err instanceof AuthorizationError) {
    msg = `not permitted: ${err.message}`;
  } else if (err instanceof ConnectionError) {
    msg = err.message;
  } else if (err instanceof JetStreamApiError) {
    msg = err.message;
  } else if (err instanceof Error) {
    msg = err.message || err.name;
  } else {
    msg = String(err);
  }
  return redactSecrets(msg.replace(/\s*\n\s*/g, " ").trim());
}

/**
 * Runs a script's `main`, turning every failure into one line on stderr
 * (`<program>: error: ...`) and an exit code: 2 for usage, 1 otherwise, never
 * a stack trace. `main` returns the exit code for success paths.
 *
 * @example
 * ```ts ignore
 * import { runMain } from "./_cli.ts";
 * await runMain("kv", async () => 0);
 * ```
 */
export async function runMain(program: string, main: () => Promise<number>): Promise<never> {
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    eprintln(`${program}: error: ${oneLine(e.reason)}`);
    Deno.exit(1);
  });
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof UsageError) {
      eprintln(`${program}: error: ${oneLine(err)} (see --help)`);
      code = 2;
    } else if (err instanceof CliError) {
      eprintln(`${program}: error: ${oneLine(err)}`);
      code = err.exitCode;
    } else {
      eprintln(`${program}: error: ${oneLine(err)}`);
      code = 1;
    }
  }
  Deno.exit(code);
}

/**
 * Asks a yes/no question on the terminal; refuses (throws {@link CliError})
 * when stdin is not a terminal, so scripts must pass `-f`.
 *
 * @example
 * ```ts ignore
 * import { confirm } from "./_cli.ts";
 * if (await confirm("Delete bucket demo?")) console.log("gone");
 * ```
 */
export async function confirm(question: string): Promise<boolean> {
  if (!Deno.stdin.isTerminal()) {
    throw new CliError(`${question} Refusing without a terminal to confirm; pass -f to force`);
  }
  writeAllSync(Deno.stderr, encoder.encode(`${question} [y/N] `));
  const buf = new Uint8Array(256);
  const n = await Deno.stdin.read(buf);
  const answer = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n)).trim();
  return /^y(es)?$/i.test(answer);
}

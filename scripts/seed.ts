/**
 * `deno task seed`: bulk-loads keys into a KV bucket from NDJSON
 * (`{"key":..,"value":..}` per line), a JSON object (`{key: value, ...}`) or
 * CSV (`--key-column`), from a file or stdin, or generates synthetic keys
 * (`--generate N`). Values are stored JSON-encoded (kvedge's default codec).
 *
 * Writes are pipelined (`--window` puts in flight). Bad records are reported
 * with their line number on stderr and skipped (`--on-error skip`, the
 * default) or stop the run (`--on-error fail`, exit 1) once the writes in
 * flight have settled. The summary names the last line fully acknowledged, so
 * an interrupted run resumes with `--from-line`.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { type KV, Kvm } from "@nats-io/kv";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { ensureKvBucket } from "../src/kv_create.ts";
import { kvStreamName } from "../src/kv_layout.ts";
import { isStreamNotFound } from "../src/nats_errors.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import { bucketProblem } from "../src/keys.ts";
import { commandHelp, type CommandSpec, type FlagValues, parseArgs } from "./cli/args.ts";
import { connectFlags, connectFromFlags, GLOBAL_FLAGS } from "./cli/connect.ts";
import { CliError, oneLine, UsageError } from "./cli/errors.ts";
import { runMain } from "./cli/main.ts";
import { eprintln, println, quote } from "./cli/output.ts";
import { generateRecords } from "./seed/generate.ts";
import { readRecords } from "./seed/input.ts";
import { type SeedFormat, SeedInputError, type SeedRecord } from "./seed/record.ts";
import { DEFAULT_WINDOW, seed, type SeedProgress, type SeedResult } from "./seed/loop.ts";
import { progressLine } from "./seed/progress.ts";

const PROGRAM = "deno task seed";

const SPEC: CommandSpec = {
  name: "",
  summary: "Bulk-loads keys into a KV bucket",
  description: [
    'Bulk-loads keys into a KV bucket from NDJSON ({"key":..,"value":..} per line), a JSON',
    "object ({key: value, ...}) or CSV (--key-column), read from a file or stdin; or writes",
    "--generate N synthetic keys. Values are stored JSON-encoded. Bad records are reported",
    "with their line number on stderr.",
    "",
    "examples:",
    "  deno task seed --bucket demo --generate 10000",
    "  deno task seed --bucket demo examples/users.ndjson",
    "  deno task seed --bucket demo --key-column id examples/users.csv",
    "  deno task seed --bucket demo --dry-run --schema examples/user_schema.ts examples/users.ndjson",
    "  echo '{\"cfg.limit\": 42}' | deno task seed --bucket demo --dry-run",
  ].join("\n"),
  args: [{ name: "file", help: "input file; - or omitted reads stdin" }],
  flags: {
    bucket: { type: "string", placeholder: "NAME", help: "the bucket to write to (required)" },
    create: { type: "boolean", help: "create the bucket if it does not exist" },
    replicas: {
      type: "int",
      default: 1,
      min: 1,
      max: 5,
      placeholder: "N",
      help: "replicas of a bucket made by --create",
    },
    history: {
      type: "int",
      default: 10, // as `deno task kv add` and openCache()'s `create`
      min: 1,
      max: 64,
      placeholder: "N",
      help: "revisions kept per key in a bucket made by --create",
    },
    ttl: { type: "duration", placeholder: "DURATION", help: "TTL of a bucket made by --create" },
    storage: {
      type: "string",
      default: "file",
      choices: ["file", "memory"],
      help: "storage of a bucket made by --create",
    },
    file: { type: "string", placeholder: "PATH", help: "input file (same as the argument)" },
    format: {
      type: "string",
      choices: ["ndjson", "json", "csv"],
      help: "input format (default: from --key-column, the file extension, or the first line)",
    },
    "key-column": { type: "string", placeholder: "NAME", help: "CSV column holding the key" },
    schema: {
      type: "string",
      placeholder: "MODULE",
      help: "module exporting a zod schema (as default or `schema`) every value must match",
    },
    window: {
      type: "int",
      default: DEFAULT_WINDOW,
      min: 1,
      max: 65536,
      placeholder: "N",
      help: "writes in flight at once",
    },
    "dry-run": { type: "boolean", help: "validate and count only; write nothing" },
    "on-error": {
      type: "string",
      default: "skip",
      choices: ["skip", "fail"],
      help: "skip bad records, or stop at the first (exit 1)",
    },
    "from-line": {
      type: "int",
      default: 1,
      min: 1,
      placeholder: "N",
      help: "skip input lines before N (resume a stopped run)",
    },
    generate: {
      type: "int",
      min: 0,
      placeholder: "N",
      help: "write N synthetic keys <prefix>.1 … <prefix>.N instead of reading input",
    },
    prefix: {
      type: "string",
      default: "gen",
      placeholder: "PREFIX",
      help: "key prefix of --generate",
    },
    "value-size": {
      type: "bytes",
      default: 64,
      placeholder: "BYTES",
      help: "size of each --generate value (a JSON object)",
    },
    progress: {
      type: "boolean",
      help: "show a progress bar (default: when stderr is a terminal)",
    },
  },
};

/** Loads the zod schema exported by `path` and returns a checker of values. */
async function loadSchema(path: string): Promise<(value: unknown) => string | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(path).href);
  } catch (err) {
    throw new CliError(`cannot load schema module ${path}: ${oneLine(err)}`);
  }
  type SafeParse = (v: unknown) => {
    success: boolean;
    error?: { issues: { path: PropertyKey[]; message: string }[] };
  };
  const schema = (mod.default ?? mod.schema) as { safeParse?: SafeParse } | undefined;
  if (!schema || typeof schema.safeParse !== "function") {
    throw new CliError(`schema module ${path} exports no zod schema as default or \`schema\``);
  }
  const safeParse = schema.safeParse.bind(schema);
  return (value) => {
    const r = safeParse(value);
    if (r.success) return undefined;
    const issue = r.error?.issues[0];
    const at = issue && issue.path.length ? ` at ${issue.path.map(String).join(".")}` : "";
    return `value does not match the schema${at}: ${issue?.message ?? "invalid"}`;
  };
}

function formatFromPath(path: string | undefined): SeedFormat | "auto" {
  if (!path) return "auto";
  const lower = path.toLowerCase();
  if (lower.endsWith(".ndjson") || lower.endsWith(".jsonl")) return "ndjson";
  if (lower.endsWith(".csv")) return "csv";
  return "auto";
}

function summary(r: SeedResult): string {
  const secs = (r.elapsedMs / 1000).toFixed(2);
  const verb = r.dryRun ? "validated" : "seeded";
  const tail = r.dryRun ? " (dry run: nothing written)" : "";
  return `${verb} ${r.written} keys in ${secs} s (${
    Math.round(r.keysPerSecond)
  } keys/s), ${r.skipped} skipped; last acknowledged line ${r.lastAckedLine}${tail}`;
}

/** The command line, checked: what to read, how to write, where. */
interface SeedRun {
  flags: FlagValues;
  json: boolean;
  dryRun: boolean;
  /** Required unless `dryRun`. */
  bucket: string | undefined;
  generate: number | undefined;
  file: string | undefined;
  keyColumn: string | undefined;
  format: SeedFormat | "auto";
  fromLine: number;
}

/** Parses and checks `argv`; undefined after printing `--help`. Throws `UsageError`/`CliError`. */
function parseSeedArgs(argv: string[]): SeedRun | undefined {
  const { positionals, flags, help } = parseArgs(argv, [GLOBAL_FLAGS, SPEC.flags]);
  if (help) {
    println(commandHelp(PROGRAM, SPEC, GLOBAL_FLAGS));
    return undefined;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${quote(positionals[1]!)}`);
  const json = flags.json === true;
  const dryRun = flags["dry-run"] === true;
  const bucket = flags.bucket as string | undefined;
  if (bucket === undefined && !dryRun) throw new UsageError("--bucket NAME is required");
  if (bucket !== undefined) {
    const problem = bucketProblem(bucket);
    if (problem) throw new CliError(`invalid bucket name ${quote(bucket)}: ${problem}`);
  }
  const generate = flags.generate as number | undefined;
  const file = (flags.file as string | undefined) ?? positionals[0];
  if (generate !== undefined && file !== undefined) {
    throw new UsageError("--generate writes synthetic keys; it takes no input file");
  }
  const keyColumn = flags["key-column"] as string | undefined;
  const format = (flags.format as SeedFormat | undefined) ??
    (keyColumn !== undefined ? "csv" : formatFromPath(file));
  if (format === "csv" && keyColumn === undefined) {
    throw new UsageError("CSV input needs --key-column NAME");
  }
  if (format === "json" || format === "ndjson") {
    if (keyColumn !== undefined && flags.format !== undefined) {
      throw new UsageError(`--key-column only applies to CSV, not ${format}`);
    }
  }
  if (generate !== undefined && flags.schema !== undefined) {
    throw new UsageError("--schema checks input values; it does not apply to --generate");
  }
  const fromLine = flags["from-line"] as number;
  return { flags, json, dryRun, bucket, generate, file, keyColumn, format, fromLine };
}

/** The records to write, and how far through them the run is, for the progress bar's ETA. */
interface SeedInput {
  records: AsyncIterable<SeedRecord[]> | Iterable<SeedRecord[]>;
  /** Records to generate, or bytes in the input file; undefined for stdin. */
  total: number | undefined;
  unit: "records" | "bytes";
  /** Input bytes read so far. */
  bytesRead: number;
}

/** Generated records, or the records of the input file or stdin. */
async function openInput(run: SeedRun): Promise<SeedInput> {
  const { flags, generate, file, fromLine } = run;
  if (generate !== undefined) {
    return {
      records: generateRecords({
        count: generate,
        prefix: flags.prefix as string,
        valueSize: flags["value-size"] as number,
        fromLine,
      }),
      total: generate,
      unit: "records",
      bytesRead: 0,
    };
  }
  const input: SeedInput = { records: [], total: undefined, unit: "records", bytesRead: 0 };
  let stream: ReadableStream<Uint8Array>;
  if (file === undefined || file === "-") {
    if (Deno.stdin.isTerminal()) {
      throw new UsageError("no input: give a file, pipe data on stdin, or use --generate N");
    }
    stream = Deno.stdin.readable;
  } else {
    try {
      const f = await Deno.open(file);
      input.total = (await f.stat()).size;
      input.unit = "bytes";
      stream = f.readable;
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${oneLine(err)}`);
    }
  }
  input.records = readRecords(stream, {
    format: run.format,
    keyColumn: run.keyColumn,
    fromLine,
    onBytes: (n) => (input.bytesRead += n),
  });
  return input;
}

/**
 * Opens the bucket (creating it with `--create` if it does not exist) and
 * the largest value it takes: the server's max payload or the stream's max message size.
 */
async function openBucket(
  nc: NatsConnection,
  run: SeedRun,
): Promise<{ kv: KV; maxValueBytes: number }> {
  const { flags } = run;
  const bucket = run.bucket!;
  const timeout = flags.timeout as number;
  const jsm = await jetstreamManager(nc, { timeout });
  const kvm = new Kvm(jetstream(nc, { timeout }));
  let kv: KV;
  let maxMsgSize = -1;
  try {
    maxMsgSize = (await jsm.streams.info(kvStreamName(bucket))).config.max_msg_size ?? -1;
    kv = await kvm.open(bucket);
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    if (!flags.create) {
      throw new CliError(
        `bucket ${quote(bucket)} does not exist (pass --create to make it)`,
      );
    }
    // The stream `nats kv add` makes (src/kv_create.ts): each tool accepts the other's bucket.
    await ensureKvBucket(jsm, bucket, {
      replicas: flags.replicas as number,
      history: flags.history as number,
      storage: flags.storage === "memory" ? "memory" : "file",
      ...(typeof flags.ttl === "number" ? { ttlMs: flags.ttl } : {}),
    });
    kv = await kvm.open(bucket);
  }
  const maxPayload = nc.info?.max_payload ?? Infinity;
  return { kv, maxValueBytes: Math.min(maxPayload, maxMsgSize > 0 ? maxMsgSize : Infinity) };
}

/** Prints the summary (or its JSON) and, if the run stopped, where to resume; the exit code. */
function report(run: SeedRun, result: SeedResult): number {
  if (run.json) {
    println(JSON.stringify({ ...result, bucket: run.bucket ?? null }));
  } else {
    println(summary(result));
  }
  if (result.stopped) {
    eprintln(
      `seed: error: stopped at line ${result.stopped.line}: ${result.stopped.reason}; resume with --from-line ${
        result.lastAckedLine + 1
      }`,
    );
    return 1;
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const run = parseSeedArgs(argv);
  if (run === undefined) return 0;
  const { flags, dryRun, fromLine } = run;
  const validate = typeof flags.schema === "string" ? await loadSchema(flags.schema) : undefined;
  const input = await openInput(run);

  let nc: NatsConnection | undefined;
  const controller = new AbortController();
  // The first Ctrl-C stops reading and lets the writes in flight settle; a second one quits.
  const onSignal = () => controller.signal.aborted ? Deno.exit(130) : controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const showProgress = !run.json &&
    (flags.progress as boolean | undefined ?? Deno.stderr.isTerminal());
  const bar = progressLine();
  try {
    let bucket: { kv: KV; maxValueBytes: number } | undefined;
    if (!dryRun) {
      nc = await connectFromFlags({ ...connectFlags(flags), program: "seed" });
      bucket = await openBucket(nc, run);
    }
    const result = await seed({
      ...(bucket ? { kv: bucket.kv } : {}),
      records: input.records,
      window: flags.window as number,
      onError: flags["on-error"] as "skip" | "fail",
      dryRun,
      fromLine,
      ...(validate ? { validate } : {}),
      ...(bucket !== undefined ? { maxValueBytes: bucket.maxValueBytes } : {}),
      signal: controller.signal,
      onBadRecord: (line, problem) => {
        bar.clear();
        eprintln(`seed: line ${line}: ${problem}`);
      },
      ...(showProgress
        ? {
          onProgress: (p: SeedProgress) => {
            const done = input.unit === "bytes" ? input.bytesRead : p.written + p.skipped;
            bar.show(p, input.total, done);
          },
        }
        : {}),
    });
    bar.clear();
    return report(run, result);
  } catch (err) {
    bar.clear();
    if (err instanceof SeedInputError) throw new CliError(err.message);
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    if (nc) await nc.close().catch(() => {});
  }
}

if (import.meta.main) {
  await runMain("seed", () => main(Deno.args));
}

/**
 * `deno task kv <command>`: a `nats kv`-compatible operator CLI for the
 * JetStream KV buckets kvedge uses (standard layout: stream `KV_<bucket>`,
 * subjects `$KV.<bucket>.>`), so it and the real `nats kv` work on the same
 * buckets. Run `deno task kv --help` for the commands.
 *
 * Human output is aligned tables; `--json` prints JSON (one document, or one
 * line per event for `watch`). Errors are one line on stderr with exit code 1,
 * or 2 for a usage mistake.
 *
 * @module
 */
import { type KV, type KvEntry, Kvm, type KvWatchInclude } from "@nats-io/kv";
import {
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { assertFilter, assertKey, bucketProblem } from "../src/keys.ts";
import { bucketOfStream, KV_STREAM_PREFIX, kvStreamName } from "../src/kv_layout.ts";
import {
  commandHelp,
  type CommandSpec,
  type FlagSpec,
  type FlagValues,
  parseArgs,
} from "./_cli_args.ts";
import { connectFlags, connectFromFlags, GLOBAL_FLAGS } from "./_cli_connect.ts";
import { CliError, UsageError } from "./_cli_errors.ts";
import { confirm, runMain } from "./_cli_main.ts";
import {
  eprintln,
  formatColumns,
  formatTable,
  isPrintable,
  println,
  quote,
  toBase64,
  writeAllSync,
} from "./_cli_output.ts";
import { formatBytes, formatDuration, parseIntStrict } from "./_cli_units.ts";
import { createRegionalMirror } from "../src/region_mirror.ts";

const PROGRAM = "deno task kv";

const FORCE: FlagSpec = { type: "boolean", short: "f", help: "act without confirmation" };

const BUCKET_ARG = { name: "bucket", help: "the bucket to act on", required: true };
const KEY_ARG = { name: "key", help: "the key to act on", required: true };

const COMMANDS: CommandSpec[] = [
  {
    name: "add",
    aliases: ["new"],
    summary: "Adds a new KV bucket",
    description:
      "Adds a new KV bucket (stream KV_<bucket>). Adding a bucket that exists with the same settings is a no-op; with different settings it fails.",
    args: [BUCKET_ARG],
    flags: {
      history: {
        type: "int",
        // As openCache()'s `create` and `deno task serve`, so that re-adding
        // a bucket they made is a no-op (`nats kv add` defaults to 1).
        default: 10,
        min: 1,
        max: 64,
        placeholder: "N",
        help: "how many historic values to keep per key",
      },
      ttl: {
        type: "duration",
        placeholder: "DURATION",
        help: "how long to keep values (1h, 30s…)",
      },
      replicas: {
        type: "int",
        default: 1,
        min: 1,
        max: 5,
        placeholder: "N",
        help: "how many replicas of the data to store",
      },
      "max-value-size": {
        type: "bytes",
        placeholder: "BYTES",
        help: "largest value accepted (e.g. 64KiB)",
      },
      "max-bucket-size": {
        type: "bytes",
        aliases: ["max-bytes"],
        placeholder: "BYTES",
        help: "most bytes the bucket may hold",
      },
      storage: {
        type: "string",
        default: "file",
        choices: ["file", "f", "memory", "m"],
        help: "storage backend",
      },
      description: { type: "string", placeholder: "TEXT", help: "a description for the bucket" },
    },
  },
  {
    name: "info",
    aliases: ["status", "view"],
    summary: "Shows a bucket's configuration and state, or every bucket's status",
    args: [{ name: "bucket", help: "the bucket to show (default: all buckets)" }],
    flags: {},
  },
  {
    name: "ls",
    aliases: ["list"],
    summary: "Lists the buckets, or the keys of a bucket",
    args: [
      { name: "bucket", help: "list this bucket's keys instead of the buckets" },
      { name: "filter", help: "key filter with * and > wildcards (default all keys)" },
    ],
    flags: { names: { type: "boolean", short: "n", help: "show just the bucket names" } },
  },
  {
    name: "put",
    summary: "Puts a value into a key",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; read from stdin when - or omitted",
    }],
    flags: {},
  },
  {
    name: "get",
    summary: "Gets the value of a key",
    args: [BUCKET_ARG, KEY_ARG],
    flags: {
      revision: { type: "int", min: 1, placeholder: "N", help: "get a specific revision" },
      raw: { type: "boolean", help: "print only the value's bytes" },
    },
  },
  {
    name: "create",
    summary: "Puts a value into a key only if the key is new or its last operation was a delete",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; read from stdin when - or omitted",
    }],
    flags: {},
  },
  {
    name: "update",
    summary: "Updates a key if its current revision is the one given (compare-and-set)",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; - reads stdin",
      required: true,
    }, { name: "revision", help: "the revision the key must be at", required: true }],
    flags: {},
  },
  {
    name: "del",
    aliases: ["rm"],
    summary: "Deletes a key, or the entire bucket when no key is given",
    args: [BUCKET_ARG, {
      name: "key",
      help: "the key to delete (omitted: remove the whole bucket)",
    }],
    flags: { force: FORCE },
  },
  {
    name: "purge",
    summary: "Deletes a key and all of its history, leaving a purge marker",
    args: [BUCKET_ARG, KEY_ARG],
    flags: { force: FORCE },
  },
  {
    name: "history",
    summary: "Shows the full history of a key",
    args: [BUCKET_ARG, KEY_ARG],
    flags: {},
  },
  {
    name: "keys",
    summary: "Lists the keys of a bucket (deleted keys excluded)",
    args: [BUCKET_ARG, {
      name: "filter",
      help: "key filter with * and > wildcards (default all keys)",
    }],
    flags: {},
  },
  {
    name: "watch",
    summary: "Watches the bucket or some keys for changes, until interrupted",
    args: [BUCKET_ARG, { name: "filter", help: "key filter (default >, all keys)" }],
    flags: {
      history: { type: "boolean", help: "include historic values" },
      deletes: {
        type: "boolean",
        default: true,
        help: "include deletes (--no-deletes to skip them)",
      },
      updates: { type: "boolean", help: "only show new values written" },
      revision: { type: "int", min: 1, placeholder: "N", help: "start from this revision" },
      count: { type: "int", min: 1, placeholder: "N", help: "exit after N events" },
    },
  },
  {
    name: "mirror",
    summary: "Creates a region's mirror of a hub bucket on the server connected to (a leaf node)",
    description:
      "Creates KV_<bucket> on the connected server (a leaf node in its own JetStream domain) as a mirror of the hub's KV_<bucket> through the hub's domain, with the bucket's history, TTL and size limits; regional edges then read it with region: { hubDomain }. A mirror that exists already is kept. See docs/topologies.md.",
    args: [BUCKET_ARG],
    flags: {
      "hub-domain": {
        type: "string",
        placeholder: "DOMAIN",
        help: "the hub's JetStream domain (required)",
      },
      replicas: {
        type: "int",
        default: 1,
        min: 1,
        max: 5,
        placeholder: "N",
        help: "replicas of the mirror in the region",
      },
    },
  },
];

function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = [
    `usage: ${PROGRAM} [global flags] <command> [args] [flags]`,
    "",
    "Interacts with JetStream KV buckets, like `nats kv`.",
    "",
    "commands:",
    ...COMMANDS.map((c) =>
      `  ${c.name.padEnd(width)}  ${c.summary}${
        c.aliases?.length ? ` (aliases: ${c.aliases.join(", ")})` : ""
      }`
    ),
    "",
    "global flags:",
    flagsHelpOfGlobals(),
    "",
    `Run \`${PROGRAM} <command> --help\` for a command's arguments and flags.`,
  ];
  return lines.join("\n");
}

function flagsHelpOfGlobals(): string {
  return commandHelp(PROGRAM, { name: "", summary: "", args: [], flags: {} }, GLOBAL_FLAGS)
    .split("global flags:\n")[1]!;
}

/** What every command gets: its arguments, flags, and a lazily opened connection. */
interface Ctx {
  cmd: CommandSpec;
  args: string[];
  flags: FlagValues;
  json: boolean;
  connect(): Promise<NatsConnection>;
}

// ---------------------------------------------------------------------------
// NATS helpers

async function manager(ctx: Ctx): Promise<JetStreamManager> {
  const nc = await ctx.connect();
  return await jetstreamManager(nc, { timeout: ctx.flags.timeout as number });
}

function kvm(nc: NatsConnection, ctx: Ctx): Kvm {
  return new Kvm(jetstream(nc, { timeout: ctx.flags.timeout as number }));
}

function isApiError(err: unknown, code?: number): err is JetStreamApiError {
  return err instanceof JetStreamApiError && (code === undefined || err.code === code);
}

const STREAM_NOT_FOUND = JetStreamApiCodes.StreamNotFound;
const WRONG_LAST_SEQUENCE = JetStreamApiCodes.StreamWrongLastSequence;

/** Stream info of bucket `name`, or a one-line "does not exist". */
async function bucketInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(kvStreamName(name));
  } catch (err) {
    if (isApiError(err, STREAM_NOT_FOUND)) {
      throw new CliError(`bucket ${quote(name)} does not exist`);
    }
    throw err;
  }
}

/** Opens an existing bucket, failing with one line if it is absent. */
async function openBucket(ctx: Ctx, name: string): Promise<{ kv: KV; info: StreamInfo }> {
  const nc = await ctx.connect();
  const jsm = await manager(ctx);
  const info = await bucketInfo(jsm, name);
  const kv = await kvm(nc, ctx).open(name);
  return { kv, info };
}

function checkBucket(name: string | undefined): string {
  if (name === undefined) throw new UsageError("missing argument <bucket>");
  const problem = bucketProblem(name);
  if (problem) throw new CliError(`invalid bucket name ${quote(name)}: ${problem}`);
  return name;
}

function checkKey(key: string | undefined, action: string): string {
  if (key === undefined) throw new UsageError("missing argument <key>");
  try {
    assertKey(key, `${action} ${quote(key)}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return key;
}

function checkFilter(filter: string, action: string): string {
  try {
    assertFilter(filter, `${action} ${quote(filter)}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  return filter;
}

/** The value argument, or stdin when it is `-` or absent. */
async function valueOf(arg: string | undefined): Promise<Uint8Array> {
  if (arg === undefined || arg === "-") return await new Response(Deno.stdin.readable).bytes();
  return new TextEncoder().encode(arg);
}

function out(ctx: Ctx, json: unknown, human: () => string | undefined): void {
  if (ctx.json) {
    println(JSON.stringify(json));
    return;
  }
  const text = human();
  if (text !== undefined) println(text);
}

// ---------------------------------------------------------------------------
// Presenting buckets and entries

function storageName(s: string): string {
  return s === "memory" ? "Memory" : "File";
}

function bucketJson(si: StreamInfo) {
  const c = si.config;
  return {
    bucket: bucketOfStream(c.name) ?? c.name,
    stream: c.name,
    description: c.description ?? "",
    created: si.created,
    values: si.state.messages,
    bytes: si.state.bytes,
    history: c.max_msgs_per_subject,
    ttlMs: Math.round((c.max_age ?? 0) / 1e6),
    replicas: c.num_replicas,
    storage: c.storage,
    maxBytes: c.max_bytes,
    maxValueSize: c.max_msg_size ?? -1,
    lastUpdate: si.state.last_ts,
    firstRevision: si.state.first_seq,
    lastRevision: si.state.last_seq,
    cluster: si.cluster
      ? {
        name: si.cluster.name ?? "",
        leader: si.cluster.leader ?? "",
        replicas: (si.cluster.replicas ?? []).map((r) => ({
          name: r.name,
          current: r.current,
          offline: r.offline ?? false,
          lag: r.lag ?? 0,
        })),
      }
      : undefined,
  };
}

function renderInfo(si: StreamInfo): string {
  const b = bucketJson(si);
  const rows: [string, string][] = [
    ["Bucket Name", b.bucket],
    ["History Kept", String(b.history)],
    ["Values Stored", String(b.values)],
    ["Backing Store Kind", "JetStream"],
  ];
  if (b.description) rows.push(["Description", b.description]);
  rows.push(
    ["Bucket Size", formatBytes(b.bytes)],
    ["Maximum Bucket Size", b.maxBytes < 0 ? "unlimited" : formatBytes(b.maxBytes)],
    ["Maximum Value Size", b.maxValueSize < 0 ? "unlimited" : formatBytes(b.maxValueSize)],
    ["Maximum Age", b.ttlMs <= 0 ? "unlimited" : formatDuration(b.ttlMs)],
    ["JetStream Stream", b.stream],
    ["Storage", storageName(b.storage)],
    ["Replicas", String(b.replicas)],
    ["Revisions", `${b.firstRevision}…${b.lastRevision}`],
  );
  const lines = [
    `Information for Key-Value Store Bucket ${b.bucket} created ${b.created}`,
    "",
    "Configuration:",
    "",
    formatColumns(rows),
  ];
  if (b.cluster) {
    const crows: [string, string][] = [["Name", b.cluster.name], ["Leader", b.cluster.leader]];
    for (const r of b.cluster.replicas) {
      const state = [r.name, r.current ? "current" : "outdated"];
      if (r.offline) state.push("OFFLINE");
      if (r.lag > 0) state.push(`${r.lag} operations behind`);
      crows.push(["Replica", state.join(", ")]);
    }
    lines.push("", "Cluster Information:", "", formatColumns(crows));
  }
  return lines.join("\n");
}

function renderBucketTable(infos: StreamInfo[]): string {
  const rows = infos.map((si) => {
    const b = bucketJson(si);
    return [
      b.bucket,
      String(b.values),
      formatBytes(b.bytes),
      String(b.history),
      b.ttlMs > 0 ? formatDuration(b.ttlMs) : "-",
      String(b.replicas),
      storageName(b.storage),
      b.description,
      b.lastUpdate && !b.lastUpdate.startsWith("0001") ? b.lastUpdate : "never",
    ];
  });
  return formatTable(
    [
      "Bucket",
      "Values",
      "Size",
      "History",
      "TTL",
      "Replicas",
      "Storage",
      "Description",
      "Last Update",
    ],
    rows,
  );
}

function valueJson(bytes: Uint8Array): { value: string } | { valueBase64: string } {
  return isPrintable(bytes)
    ? { value: new TextDecoder().decode(bytes) }
    : { valueBase64: toBase64(bytes) };
}

function valueText(bytes: Uint8Array): string {
  return isPrintable(bytes) ? new TextDecoder().decode(bytes) : toBase64(bytes);
}

function entryJson(e: KvEntry) {
  return {
    bucket: e.bucket,
    key: e.key,
    revision: e.revision,
    operation: e.operation,
    created: e.created.toISOString(),
    delta: e.delta,
    length: e.value.length,
    ...valueJson(e.value),
  };
}

function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, 15)}...${text.slice(-15)}` : text;
}

// ---------------------------------------------------------------------------
// Commands

async function listBuckets(ctx: Ctx): Promise<StreamInfo[]> {
  const jsm = await manager(ctx);
  const infos: StreamInfo[] = [];
  for await (const si of jsm.streams.list()) {
    if (si.config.name.startsWith(KV_STREAM_PREFIX)) infos.push(si);
  }
  infos.sort((a, b) => a.config.name.localeCompare(b.config.name));
  return infos;
}

async function cmdAdd(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const f = ctx.flags;
  const storage = String(f.storage).startsWith("m") ? StorageType.Memory : StorageType.File;
  const want = {
    history: f.history as number,
    ttl: (f.ttl as number | undefined) ?? 0,
    replicas: f.replicas as number,
    max_bytes: (f["max-bucket-size"] as number | undefined) ?? -1,
    maxValueSize: (f["max-value-size"] as number | undefined) ?? -1,
    storage,
    ...(typeof f.description === "string" ? { description: f.description } : {}),
  };
  const nc = await ctx.connect();
  const jsm = await manager(ctx);
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(kvStreamName(bucket));
  } catch (err) {
    if (!isApiError(err, STREAM_NOT_FOUND)) throw err;
  }
  if (existing) {
    const c = existing.config;
    const differs: string[] = [];
    if (c.max_msgs_per_subject !== want.history) differs.push(`history ${c.max_msgs_per_subject}`);
    if (Math.round((c.max_age ?? 0) / 1e6) !== want.ttl) {
      differs.push(`ttl ${formatDuration((c.max_age ?? 0) / 1e6)}`);
    }
    if (c.num_replicas !== want.replicas) differs.push(`replicas ${c.num_replicas}`);
    if (c.storage !== want.storage) differs.push(`storage ${c.storage}`);
    if ((c.max_bytes ?? -1) !== want.max_bytes) differs.push(`max bytes ${c.max_bytes}`);
    if ((c.max_msg_size ?? -1) !== want.maxValueSize) {
      differs.push(`max value size ${c.max_msg_size}`);
    }
    if (differs.length) {
      throw new CliError(
        `bucket ${quote(bucket)} already exists with different settings (${differs.join(", ")})`,
      );
    }
  } else {
    await kvm(nc, ctx).create(bucket, want);
  }
  const si = await bucketInfo(jsm, bucket);
  out(ctx, bucketJson(si), () => renderInfo(si));
  return 0;
}

async function cmdMirror(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const hubDomain = ctx.flags["hub-domain"];
  if (typeof hubDomain !== "string" || hubDomain === "") {
    throw new UsageError("missing flag --hub-domain");
  }
  const nc = await ctx.connect();
  let si: StreamInfo;
  try {
    si = await createRegionalMirror(nc, bucket, {
      hubDomain,
      replicas: ctx.flags.replicas as number,
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  out(
    ctx,
    { ...bucketJson(si), mirror: si.mirror },
    () =>
      `${
        renderInfo(si)
      }\n\nMirror of ${si.config.mirror?.name} through ${si.config.mirror?.external?.api}: ${
        si.mirror && si.mirror.active >= 0 ? "in contact" : "waiting for the hub"
      }`,
  );
  return 0;
}

async function cmdInfo(ctx: Ctx): Promise<number> {
  const name = ctx.args[0];
  if (name === undefined) {
    const infos = await listBuckets(ctx);
    out(
      ctx,
      infos.map(bucketJson),
      () => infos.length ? renderBucketTable(infos) : "No Key-Value buckets found",
    );
    return 0;
  }
  const bucket = checkBucket(name);
  const si = await bucketInfo(await manager(ctx), bucket);
  out(ctx, bucketJson(si), () => renderInfo(si));
  return 0;
}

async function cmdLs(ctx: Ctx): Promise<number> {
  if (ctx.args[0] !== undefined) return await cmdKeys(ctx);
  const infos = await listBuckets(ctx);
  if (ctx.flags.names) {
    const names = infos.map((si) => si.config.name.slice(3));
    out(ctx, names, () => names.length ? names.join("\n") : undefined);
    return 0;
  }
  out(
    ctx,
    infos.map(bucketJson),
    () => infos.length ? renderBucketTable(infos) : "No Key-Value buckets found",
  );
  return 0;
}

async function cmdKeys(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const filter = ctx.args[1] === undefined ? undefined : checkFilter(ctx.args[1], "list keys");
  const { kv } = await openBucket(ctx, bucket);
  const keys: string[] = [];
  for await (const k of await kv.keys(filter)) keys.push(k);
  keys.sort();
  if (ctx.json) {
    println(JSON.stringify(keys));
  } else if (keys.length === 0) {
    eprintln("No keys found in bucket");
  } else {
    println(keys.join("\n"));
  }
  return 0;
}

async function writeCmd(ctx: Ctx, op: "put" | "create" | "update"): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = checkKey(ctx.args[1], op);
  let expected: number | undefined;
  if (op === "update") {
    if (ctx.args[2] === undefined) throw new UsageError("missing argument <value>");
    if (ctx.args[3] === undefined) throw new UsageError("missing argument <revision>");
    expected = parseIntStrict(ctx.args[3]);
    if (expected === undefined || expected < 1) {
      throw new UsageError(`<revision> must be a positive integer, got ${quote(ctx.args[3])}`);
    }
  }
  const value = await valueOf(ctx.args[2]);
  const { kv } = await openBucket(ctx, bucket);
  let revision: number;
  try {
    revision = op === "put"
      ? await kv.put(key, value)
      : op === "create"
      ? await kv.create(key, value)
      : await kv.update(key, value, expected!);
  } catch (err) {
    if (isApiError(err, WRONG_LAST_SEQUENCE)) {
      const current = /(\d+)\s*$/.exec((err as Error).message)?.[1];
      throw new CliError(
        op === "create"
          ? `Cannot create ${quote(key)}: the key exists${current ? ` (revision ${current})` : ""}`
          : `Cannot update ${quote(key)}: revision is ${
            current ?? "different"
          }, expected ${expected}`,
      );
    }
    throw err;
  }
  out(ctx, { bucket, key, revision }, () => `${bucket} > ${key} revision: ${revision}`);
  return 0;
}

async function cmdGet(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = checkKey(ctx.args[1], "get");
  const revision = ctx.flags.revision as number | undefined;
  const { kv } = await openBucket(ctx, bucket);
  let e: KvEntry | null;
  try {
    e = await kv.get(key, revision ? { revision } : undefined);
  } catch (err) {
    // A revision beyond the stream, or one that belongs to another subject.
    if (isApiError(err, JetStreamApiCodes.NoMessageFound)) e = null;
    else throw err;
  }
  if (e === null || e.operation !== "PUT") {
    const where = revision ? ` at revision ${revision}` : "";
    const why = e
      ? ` (${e.operation === "DEL" ? "deleted" : "purged"} at revision ${e.revision})`
      : "";
    throw new CliError(`key ${quote(key)} not found in bucket ${quote(bucket)}${where}${why}`);
  }
  if (ctx.flags.raw) {
    writeAllSync(Deno.stdout, e.value);
    return 0;
  }
  out(ctx, entryJson(e), () => {
    const text = valueText(e.value);
    const body = text.length > 120
      ? `Showing first 120 bytes of ${text.length}, use --raw for full data\n\n${
        text.slice(0, 120)
      }`
      : text;
    return `${e.bucket} > ${e.key} revision: ${e.revision} created @ ${e.created.toISOString()}\n\n${body}\n`;
  });
  return 0;
}

async function cmdDel(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = ctx.args[1] === undefined ? undefined : checkKey(ctx.args[1], "delete");
  const { kv } = await openBucket(ctx, bucket);
  if (key === undefined) {
    if (!ctx.flags.force && !await confirm(`Delete bucket ${bucket}?`)) {
      eprintln("Skipping delete");
      return 0;
    }
    await kv.destroy();
    out(ctx, { bucket, deleted: true }, () => `deleted bucket ${bucket}`);
    return 0;
  }
  if (!ctx.flags.force && !await confirm(`Delete key ${bucket} > ${key}?`)) {
    eprintln("Skipping delete");
    return 0;
  }
  await kv.delete(key);
  out(ctx, { bucket, key, operation: "DEL" }, () => `deleted ${bucket} > ${key}`);
  return 0;
}

async function cmdPurge(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = checkKey(ctx.args[1], "purge");
  const { kv } = await openBucket(ctx, bucket);
  if (!ctx.flags.force && !await confirm(`Purge key ${bucket} > ${key}?`)) {
    eprintln("Skipping purge");
    return 0;
  }
  await kv.purge(key);
  out(ctx, { bucket, key, operation: "PURGE" }, () => `purged ${bucket} > ${key}`);
  return 0;
}

async function cmdHistory(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = checkKey(ctx.args[1], "read the history of");
  const { kv } = await openBucket(ctx, bucket);
  const entries: KvEntry[] = [];
  for await (const e of await kv.history({ key })) entries.push(e);
  if (ctx.json) {
    println(JSON.stringify(entries.map(entryJson)));
    return 0;
  }
  if (entries.length === 0) {
    throw new CliError(`key ${quote(key)} not found in bucket ${quote(bucket)}`);
  }
  println(`History for ${bucket} > ${key}\n`);
  println(formatTable(
    ["Key", "Revision", "Op", "Created", "Length", "Value"],
    entries.map((e) => [
      e.key,
      String(e.revision),
      e.operation === "DEL" ? "DELETE" : e.operation,
      e.created.toISOString(),
      String(e.value.length),
      shorten(valueText(e.value), 40),
    ]),
  ));
  return 0;
}

async function cmdWatch(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const filter = checkFilter(ctx.args[1] ?? ">", "watch");
  const f = ctx.flags;
  if (f.history && f.updates) throw new UsageError("--history and --updates exclude each other");
  const { kv } = await openBucket(ctx, bucket);
  const include: KvWatchInclude = f.history ? "history" : f.updates ? "updates" : "";
  const iter = await kv.watch({
    key: filter,
    include,
    ignoreDeletes: f.deletes === false,
    ...(typeof f.revision === "number" ? { resumeFromRevision: f.revision } : {}),
  });
  const stop = () => iter.stop();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const count = f.count as number | undefined;
  let seen = 0;
  try {
    for await (const e of iter) {
      if (ctx.json) {
        println(JSON.stringify({ ...entryJson(e), isUpdate: e.isUpdate }));
      } else {
        const head = `[${e.created.toISOString()}] #${e.revision} ${
          e.operation === "DEL" ? "DELETE" : e.operation
        } ${e.bucket} > ${e.key}`;
        println(e.operation === "PUT" ? `${head}: ${valueText(e.value)}` : head);
      }
      if (count !== undefined && ++seen >= count) break;
    }
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    iter.stop();
  }
  return 0;
}

const HANDLERS: Record<string, (ctx: Ctx) => Promise<number>> = {
  add: cmdAdd,
  info: cmdInfo,
  ls: cmdLs,
  put: (ctx) => writeCmd(ctx, "put"),
  get: cmdGet,
  create: (ctx) => writeCmd(ctx, "create"),
  update: (ctx) => writeCmd(ctx, "update"),
  del: cmdDel,
  purge: cmdPurge,
  history: cmdHistory,
  keys: cmdKeys,
  watch: cmdWatch,
  mirror: cmdMirror,
};

// ---------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  // The command is the first positional; flags before it must be global ones.
  const first = parseArgs(leadingGlobals(argv).globals, [GLOBAL_FLAGS]);
  const rest = leadingGlobals(argv).rest;
  const name = rest[0];
  if (name === undefined || name === "help") {
    const topic = name === "help" ? rest[1] : undefined;
    if (topic !== undefined) {
      const cmd = findCommand(topic);
      if (!cmd) throw new UsageError(`unknown command ${quote(topic)}`);
      println(commandHelp(PROGRAM, cmd, GLOBAL_FLAGS));
      return 0;
    }
    if (first.help || name === "help") {
      println(mainHelp());
      return 0;
    }
    eprintln(mainHelp());
    return 2;
  }
  const cmd = findCommand(name);
  if (!cmd) throw new UsageError(`unknown command ${quote(name)}`);
  const parsed = parseArgs([...leadingGlobals(argv).globals, ...rest.slice(1)], [
    GLOBAL_FLAGS,
    cmd.flags,
  ]);
  if (parsed.help || first.help) {
    println(commandHelp(PROGRAM, cmd, GLOBAL_FLAGS));
    return 0;
  }
  const required = cmd.args.filter((a) => a.required);
  if (parsed.positionals.length < required.length) {
    throw new UsageError(
      `${cmd.name}: missing argument <${required[parsed.positionals.length]!.name}>`,
    );
  }
  if (parsed.positionals.length > cmd.args.length) {
    throw new UsageError(
      `${cmd.name}: unexpected argument ${quote(parsed.positionals[cmd.args.length]!)}`,
    );
  }
  let nc: NatsConnection | undefined;
  const ctx: Ctx = {
    cmd,
    args: parsed.positionals,
    flags: parsed.flags,
    json: parsed.flags.json === true,
    connect: async () =>
      nc ??= await connectFromFlags({ ...connectFlags(parsed.flags), program: "kv" }),
  };
  try {
    return await HANDLERS[cmd.name]!(ctx);
  } finally {
    if (nc) await nc.close().catch(() => {});
  }
}

/** Splits `argv` into the global flags before the command and everything from the command on. */
function leadingGlobals(argv: string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("-") || a === "-") return { globals, rest: argv.slice(i) };
    if (a === "--") return { globals, rest: argv.slice(i + 1) };
    globals.push(a);
    const name = a.startsWith("--") ? a.slice(2) : a.slice(1);
    const spec = a.startsWith("--")
      ? GLOBAL_FLAGS[name]
      : Object.values(GLOBAL_FLAGS).find((f) => f.short === name);
    const takesValue = spec !== undefined && spec.type !== "boolean" && !a.includes("=");
    if (takesValue && i + 1 < argv.length) globals.push(argv[++i]!);
  }
  return { globals, rest: [] };
}

if (import.meta.main) {
  await runMain("kv", () => main(Deno.args));
}

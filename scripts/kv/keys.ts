/**
 * The key commands of `deno task kv`: `keys`, `put`/`create`/`update`, `get`,
 * `del`, `purge`, `history` and `watch`.
 *
 * @module
 */
import type { KvEntry, KvWatchInclude } from "@nats-io/kv";
import { isWrongLastSequence, jsApiCode, JsCodes } from "../../src/nats_errors.ts";
import { CliError, UsageError } from "../cli/errors.ts";
import { confirm } from "../cli/main.ts";
import { eprintln, formatTable, println, quote, writeAllSync } from "../cli/output.ts";
import { parseIntStrict } from "../cli/units.ts";
import {
  checkBucket,
  checkFilter,
  checkKey,
  type Ctx,
  openBucket,
  out,
  valueOf,
} from "./context.ts";
import { entryJson, shorten, valueText } from "./render.ts";
import { openCache, UnsupportedError } from "../../mod.ts";

/** `keys`: the keys of a bucket, optionally filtered. */
export async function cmdKeys(ctx: Ctx): Promise<number> {
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

/** `put`, `create` and `update`: writes a value. */
export async function writeCmd(ctx: Ctx, op: "put" | "create" | "update"): Promise<number> {
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
  const ttlMs = ctx.flags.ttl as number | undefined;
  const { kv } = await openBucket(ctx, bucket);
  let revision: number;
  try {
    revision = op === "put" && ttlMs !== undefined
      ? await putWithTtl(ctx, bucket, key, value, ttlMs)
      : op === "put"
      ? await kv.put(key, value)
      : op === "create"
      ? await kv.create(key, value)
      : await kv.update(key, value, expected!);
  } catch (err) {
    if (isWrongLastSequence(err)) {
      // JetStream names the current revision only in its message text:
      // ask the bucket instead (best effort; the answer only words the error).
      const current = await kv.get(key).then((e) => e?.revision, () => undefined);
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

/**
 * `put --ttl` goes through the library's write path, so the checks (2.11+,
 * a bucket with markers, at least 1s) and the headers are the cache's own.
 */
async function putWithTtl(
  ctx: Ctx,
  bucket: string,
  key: string,
  value: Uint8Array,
  ttlMs: number,
): Promise<number> {
  const nc = await ctx.connect();
  const bytes = { encode: (v: Uint8Array) => v, decode: (b: Uint8Array) => b };
  await using cache = await openCache<Uint8Array>({
    connection: nc,
    bucket,
    local: { maxItems: 1 },
    codec: bytes,
  });
  try {
    return await cache.set(key, value, { ttlMs });
  } catch (err) {
    if (err instanceof UnsupportedError || err instanceof RangeError) {
      throw new CliError(err.message);
    }
    throw err;
  }
}

/** `get`: a key's value, at its latest or a given revision. */
export async function cmdGet(ctx: Ctx): Promise<number> {
  const bucket = checkBucket(ctx.args[0]);
  const key = checkKey(ctx.args[1], "get");
  const revision = ctx.flags.revision as number | undefined;
  const { kv } = await openBucket(ctx, bucket);
  let e: KvEntry | null;
  try {
    e = await kv.get(key, revision ? { revision } : undefined);
  } catch (err) {
    // A revision beyond the stream, or one that belongs to another subject.
    if (jsApiCode(err) === JsCodes.NoMessageFound) e = null;
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

/** `del`: deletes a key, or the whole bucket. */
export async function cmdDel(ctx: Ctx): Promise<number> {
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

/** `purge`: purges a key and its history. */
export async function cmdPurge(ctx: Ctx): Promise<number> {
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

/** `history`: every kept revision of a key. */
export async function cmdHistory(ctx: Ctx): Promise<number> {
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

/** `watch`: prints changes as they happen. */
export async function cmdWatch(ctx: Ctx): Promise<number> {
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

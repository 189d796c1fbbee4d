/**
 * The bucket commands of `deno task kv`: `add`, `mirror`, `info` and `ls`.
 *
 * @module
 */
import { isStreamNotFound } from "../../src/nats_errors.ts";
import { StorageType, type StreamInfo } from "@nats-io/jetstream";
import { KV_STREAM_PREFIX, kvStreamName } from "../../src/kv_layout.ts";
import { CliError, UsageError } from "../cli/errors.ts";
import { quote } from "../cli/output.ts";
import { formatDuration } from "../cli/units.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
import { ensureKvBucket } from "../../src/kv_create.ts";
import { assertServerVersion, PER_KEY_TTL_VERSION } from "../../src/server_version.ts";
import { UnsupportedError } from "../../mod.ts";
import { bucketInfo, checkBucket, type Ctx, manager, out } from "./context.ts";
import { bucketJson, renderBucketTable, renderInfo } from "./render.ts";
import { cmdKeys } from "./keys.ts";

/** Every KV bucket's stream info, sorted by name. */
export async function listBuckets(ctx: Ctx): Promise<StreamInfo[]> {
  const jsm = await manager(ctx);
  const infos: StreamInfo[] = [];
  for await (const si of jsm.streams.list()) {
    if (si.config.name.startsWith(KV_STREAM_PREFIX)) infos.push(si);
  }
  infos.sort((a, b) => a.config.name.localeCompare(b.config.name));
  return infos;
}

/** `add`: creates a bucket. */
export async function cmdAdd(ctx: Ctx): Promise<number> {
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
    ...(f["marker-ttl"] === undefined ? {} : { markerTTL: f["marker-ttl"] as number }),
  };
  const nc = await ctx.connect();
  if (want.markerTTL !== undefined) {
    if (want.markerTTL < 1000) {
      throw new UsageError(
        `--marker-ttl must be at least 1s, got ${formatDuration(want.markerTTL)}`,
      );
    }
    cliErrorOf(() =>
      assertServerVersion(nc, {
        feature: "per-key TTL",
        requiredVersion: PER_KEY_TTL_VERSION,
        action: `add bucket ${quote(bucket)}`,
      })
    );
  }
  const jsm = await manager(ctx);
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(kvStreamName(bucket));
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
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
    const markerTtl = Math.round((c.subject_delete_marker_ttl ?? 0) / 1e6);
    if (markerTtl !== (want.markerTTL ?? 0)) {
      differs.push(`marker ttl ${markerTtl > 0 ? formatDuration(markerTtl) : "none"}`);
    }
    if (differs.length) {
      throw new CliError(
        `bucket ${quote(bucket)} already exists with different settings (${differs.join(", ")})`,
      );
    }
  } else {
    // The stream `nats kv add` makes (src/kv_create.ts): each tool accepts the other's bucket.
    await ensureKvBucket(jsm, bucket, {
      history: want.history,
      replicas: want.replicas,
      ttlMs: want.ttl,
      maxBytes: want.max_bytes,
      maxValueSize: want.maxValueSize,
      storage: storage === StorageType.Memory ? "memory" : "file",
      markerTtlMs: want.markerTTL,
      description: want.description,
    });
  }
  const si = await bucketInfo(jsm, bucket);
  out(ctx, bucketJson(si), () => renderInfo(si));
  return 0;
}

/** Runs `check`, turning the library's `UnsupportedError` into a one-line CLI error. */
function cliErrorOf(check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof UnsupportedError) throw new CliError(err.message);
    throw err;
  }
}

/** `mirror`: creates a regional mirror of a hub bucket. */
export async function cmdMirror(ctx: Ctx): Promise<number> {
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

/** `info`: one bucket's configuration and state, or all buckets'. */
export async function cmdInfo(ctx: Ctx): Promise<number> {
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

/** `ls`: the buckets, or the keys of one bucket. */
export async function cmdLs(ctx: Ctx): Promise<number> {
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

/**
 * Creating a region's mirror of a hub bucket: `KV_<bucket>` on the regional
 * leaf node, mirroring the hub's `KV_<bucket>` through the hub's JetStream
 * domain, with the bucket's history, TTL and size limits. Used by
 * `deno task kv mirror` and the tests.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  DiscardPolicy,
  jetstreamManager,
  RetentionPolicy,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { mapNatsError } from "./errors_map.ts";
import { isStreamNotFound } from "./nats_errors.ts";
import { kvStreamName } from "./kv_layout.ts";
import { domainApi, hubWritePrefix } from "./region.ts";

/** Options of {@linkcode createRegionalMirror}. */
export interface RegionalMirrorOptions {
  /** JetStream domain of the hub that holds the bucket. */
  hubDomain: string;
  /** Replicas of the mirror in the region (1 for a single leaf node). Default 1. */
  replicas?: number;
  /** Deadline of each JetStream API call, ms. Default 10 000. */
  timeoutMs?: number;
}

/**
 * Creates the mirror of the hub's bucket on the server `nc` is connected to
 * (a leaf node in its own JetStream domain), or returns the existing one if
 * it already mirrors that bucket through that domain. The mirror keeps the
 * bucket's name (`KV_<bucket>`), so `nats kv` and kvedge read it by the
 * bucket's name; its history, TTL, value and size limits are the hub's.
 * Throws a `TypeError` if `KV_<bucket>` exists and is something else, or is
 * a mirror that keeps fewer revisions per key (or for less time) than the
 * hub's bucket — what `nats kv add <b> --mirror <b> --mirror-domain <hub>`
 * makes when `--history` is left out: history read in the region would be
 * cut short without a word.
 */
export async function createRegionalMirror(
  nc: NatsConnection,
  bucket: string,
  options: RegionalMirrorOptions,
): Promise<StreamInfo> {
  const timeout = options.timeoutMs ?? 10_000;
  const stream = kvStreamName(bucket);
  const local = await jetstreamManager(nc, { timeout, checkAPI: false });
  let existing: StreamInfo | undefined;
  try {
    existing = await local.streams.info(stream);
    hubWritePrefix(existing, { bucket, hubDomain: options.hubDomain });
  } catch (err) {
    if (err instanceof TypeError) throw err;
    if (!isStreamNotFound(err)) {
      throw mapNatsError(err, { action: `read ${stream} in the region`, bucket });
    }
  }
  const hub = await jetstreamManager(nc, {
    timeout,
    checkAPI: false,
    domain: options.hubDomain,
  });
  let origin: StreamInfo;
  try {
    origin = await hub.streams.info(stream);
  } catch (err) {
    throw mapNatsError(err, {
      action: `read ${stream} on the hub (domain "${options.hubDomain}")`,
      bucket,
    });
  }
  const c = origin.config;
  if (existing !== undefined) {
    assertMirrorLimits(existing, { origin, bucket });
    return existing;
  }
  const config: Partial<StreamConfig> & { name: string } = {
    name: stream,
    mirror: { name: stream, external: { api: domainApi(options.hubDomain) } },
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: c.max_msgs_per_subject,
    max_age: c.max_age,
    max_bytes: c.max_bytes,
    max_msg_size: c.max_msg_size,
    discard: DiscardPolicy.New,
    storage: c.storage,
    num_replicas: options.replicas ?? 1,
    allow_rollup_hdrs: true,
    deny_delete: true,
    allow_direct: true,
    mirror_direct: true,
  };
  try {
    return await local.streams.add(config);
  } catch (err) {
    throw mapNatsError(err, { action: `create the mirror ${stream} in the region`, bucket });
  }
}

/**
 * Throws a `TypeError` if the mirror `local` keeps less of each key than the
 * hub's bucket `origin` (fewer revisions, or a shorter max age), or takes
 * smaller messages (a lower `max_msg_size`: nats-server drops a hub message
 * over it without a word and reports no lag, docs/nats-versions.md).
 *
 * @example
 * ```ts ignore
 * assertMirrorLimits(await leaf.streams.info("KV_cfg"), {
 *   origin: await hub.streams.info("KV_cfg"),
 *   bucket: "cfg",
 * });
 * ```
 */
export function assertMirrorLimits(
  local: StreamInfo,
  { origin, bucket }: { origin: StreamInfo; bucket: string },
): void {
  const have = local.config.max_msgs_per_subject ?? 0;
  const want = origin.config.max_msgs_per_subject ?? 0;
  const problems: string[] = [];
  // 0 or -1: unlimited.
  const limited = have > 0;
  if (limited && (want <= 0 || have < want)) {
    problems.push(`keeps ${have} revision(s) per key, the hub's bucket ${want > 0 ? want : "all"}`);
  }
  const haveAge = local.config.max_age ?? 0;
  const wantAge = origin.config.max_age ?? 0;
  if (haveAge > 0 && (wantAge === 0 || haveAge < wantAge)) {
    problems.push(
      `keeps values ${haveAge / 1e9} s, the hub's bucket ${
        wantAge === 0 ? "forever" : `${wantAge / 1e9} s`
      }`,
    );
  }
  const haveSize = local.config.max_msg_size ?? -1;
  const wantSize = origin.config.max_msg_size ?? -1;
  if (haveSize > 0 && (wantSize <= 0 || haveSize < wantSize)) {
    problems.push(
      `takes messages of at most ${haveSize} bytes, the hub's bucket ${
        wantSize > 0 ? wantSize : "any size"
      } (a larger value would stall the mirror)`,
    );
  }
  if (problems.length === 0) return;
  const stream = kvStreamName(bucket);
  throw new TypeError(
    `Cannot use the mirror ${stream} in the region: it ${problems.join(", and ")}, so what ` +
      `the region reads falls short of the hub; remove it (\`nats stream rm ${stream}\`) and create it ` +
      `again with \`deno task kv mirror ${bucket} --hub-domain <hub>\` (or \`nats kv add ${bucket} ` +
      `--mirror ${bucket} --mirror-domain <hub> --history ${want > 0 ? want : 64}\`)`,
  );
}

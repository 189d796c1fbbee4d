/**
 * `openCache()`: connect, ensure the bucket, start the watcher.
 *
 * @module
 */
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { KvedgeCache } from "./cache.ts";
import { mapNatsError } from "./errors_map.ts";
import { resolveOptions } from "./options.ts";
import { hubWritePrefix, RegionLink } from "./region.ts";
import { guardSocketResets } from "./socket_guard.ts";
import { assertServerVersion, PER_KEY_TTL_VERSION } from "./server_version.ts";
import { kvStreamName } from "./kv_layout.ts";
import type { Cache, CacheOptions, ReadonlyCache } from "./types.ts";

/** Deadline of the watcher's control calls (stream info, consumer create), ms. */
const CONTROL_TIMEOUT_MS = 15_000;

/**
 * Opens a cache over a JetStream KV bucket: connects (or uses `connection`),
 * ensures the bucket when `create` is given (otherwise it must exist), and
 * starts the watcher. Await `ready()` before relying on replica reads.
 *
 * @example
 * ```ts ignore
 * import { openCache } from "./open.ts";
 * const users = await openCache<{ name: string }>({
 *   servers: "nats://127.0.0.1:4222",
 *   bucket: "users",
 *   create: { history: 5 },
 *   local: { maxItems: 10_000 },
 * });
 * await users.ready();
 * await users.set("user.1", { name: "Ada" });
 * console.log(await users.get("user.1"));
 * await users.close();
 * ```
 */
export async function openCache<T>(options: CacheOptions<T>): Promise<Cache<T>> {
  const o = resolveOptions(options);
  let nc: NatsConnection;
  const owns = o.connection === undefined;
  if (o.connection) {
    nc = o.connection;
  } else {
    guardSocketResets();
    try {
      nc = await connect({
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        reconnectJitter: 250,
        pingInterval: 10_000,
        ...o.connectOptions,
        servers: o.servers,
      } as NodeConnectionOptions);
    } catch (err) {
      throw mapNatsError(err, `open cache on bucket "${o.bucket}"`, o.bucket);
    }
  }
  try {
    // Control calls (stream info, consumer create) can take seconds on a large
    // bucket; they run in the background and must not share the miss deadline.
    const jsm = await jetstreamManager(nc, { timeout: CONTROL_TIMEOUT_MS, checkAPI: false });
    const js = jetstream(nc, { timeout: o.writeTimeoutMs });
    const info = await ensureBucket(nc, o.bucket, o.create, o.writeTimeoutMs);
    const readJs = jetstream(nc, { timeout: o.missTimeoutMs });
    // A regional mirror keeps the bucket's name, so binding by name reads the right subjects.
    const kv = await new Kvm(readJs).open(o.bucket, { allow_direct: o.allowDirect });
    const region = o.region && {
      writePrefix: hubWritePrefix(info, o.bucket, o.region.hubDomain),
      link: new RegionLink(jsm, o.bucket, o.region, info),
    };
    const cache = new KvedgeCache<T>({
      options: o,
      nc,
      ownsConnection: owns,
      jsm,
      js,
      kv,
      info,
      inboxPrefix: (o.connectOptions?.inboxPrefix as string | undefined) ?? undefined,
      region,
    });
    await cache.start();
    return cache;
  } catch (err) {
    if (owns) await nc.close().catch(() => {});
    if (err instanceof TypeError) throw err; // a misconfigured regional mirror
    throw mapNatsError(err, `open cache on bucket "${o.bucket}"`, o.bucket);
  }
}

/**
 * Opens a cache whose handle can only read (an edge with read-only
 * credentials). Same options as {@link openCache}.
 *
 * @example
 * ```ts ignore
 * import { openReadonlyCache } from "./open.ts";
 * const cfg = await openReadonlyCache({ servers: "nats://127.0.0.1:4222", bucket: "cfg", local: { maxItems: 1000 }, mode: "replica" });
 * await cfg.ready();
 * ```
 */
export async function openReadonlyCache<T>(options: CacheOptions<T>): Promise<ReadonlyCache<T>> {
  return (await openCache<T>(options)).readonly();
}

async function ensureBucket(
  nc: NatsConnection,
  bucket: string,
  create: ReturnType<typeof resolveOptions>["create"],
  timeoutMs: number,
): Promise<StreamInfo> {
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs, checkAPI: false });
  const stream = kvStreamName(bucket);
  if (create) {
    if (create.markerTtlMs > 0) {
      // An older server would drop the unknown settings and make a bucket without TTL.
      assertServerVersion(nc, "per-key TTL", PER_KEY_TTL_VERSION, `create bucket "${bucket}"`);
    }
    const kvm = new Kvm(jetstream(nc, { timeout: timeoutMs }));
    await kvm.create(
      bucket,
      {
        replicas: create.replicas,
        history: create.history,
        ...(create.ttlMs > 0 ? { ttl: create.ttlMs } : {}),
        ...(create.maxBytes > 0 ? { max_bytes: create.maxBytes } : {}),
        ...(create.maxValueSize > 0 ? { maxValueSize: create.maxValueSize } : {}),
        storage: create.storage === "memory" ? "memory" : "file",
        ...(create.markerTtlMs > 0 ? { markerTTL: create.markerTtlMs } : {}),
      } as Parameters<Kvm["create"]>[1],
    );
  }
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    throw mapNatsError(err, `open cache on bucket "${bucket}"`, bucket);
  }
}

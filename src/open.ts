/**
 * `openCache()`: connect, ensure the bucket, start the watcher.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type CacheLink, KvedgeCache } from "./cache.ts";
import {
  connectNats,
  type ConnectNatsOptions,
  inboxPrefixOf,
  RECONNECT_POLICY,
  transportOf,
} from "./connect.ts";
import { assertRuntime } from "./runtime_check.ts";
import { readAhead } from "./snapshot_file.ts";
import { UnavailableError } from "./errors.ts";
import { mapNatsError } from "./errors_map.ts";
import { type ResolvedOptions, resolveOptions } from "./options.ts";
import { hubWritePrefix, RegionLink } from "./region.ts";
import { assertServerVersion, PER_KEY_TTL_VERSION } from "./server_version.ts";
import { kvStreamName } from "./kv_layout.ts";
import { ensureKvBucket } from "./kv_create.ts";
import type { Cache, CacheOptions, ReadonlyCache } from "./types.ts";

/** Deadline of the watcher's control calls (stream info, consumer create), ms. */
const CONTROL_TIMEOUT_MS = 15_000;

/**
 * Opens a cache over a JetStream KV bucket: connects (or uses `connection`),
 * ensures the bucket when `create` is given (otherwise it must exist), and
 * starts the watcher. Await `ready()` before relying on replica reads.
 *
 * If NATS cannot be reached, it rejects at once with `UnavailableError` —
 * except for a replica with a usable `snapshot` file: that one opens from the
 * snapshot, serves it marked stale (`source: "stale"`, state `stale`,
 * `ready()` pending), and connects in the background; once NATS answers it
 * checks the snapshot's epoch against the stream and resumes from the
 * snapshot's revision (or, if the bucket was recreated, throws the snapshot
 * away and resyncs).
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
  const resolved = resolveOptions(options);
  assertRuntime("open cache", {
    websocket: resolved.servers !== undefined && transportOf(resolved.servers) === "websocket",
    wsFactory: typeof resolved.connectOptions?.wsFactory === "function",
  });
  // A replica reads its snapshot while it connects (it loads it right after).
  const o = resolved.mode === "replica" && resolved.snapshot
    ? {
      ...resolved,
      snapshot: { ...resolved.snapshot, storage: readAhead(resolved.snapshot.storage) },
    }
    : resolved;
  const owns = o.connection === undefined;
  // The watcher subscribes under the connection's inbox prefix: a given
  // connection's own (a least-privilege identity may subscribe there only),
  // else the one this cache connects with.
  let inboxPrefix = o.connection
    ? inboxPrefixOf(o.connection)
    : (o.connectOptions?.inboxPrefix as string | undefined) ?? undefined;
  let link: CacheLink;
  try {
    link = await bind(o);
  } catch (err) {
    // A bad "servers" list (mixed transports) is the caller's mistake, not an outage.
    if (err instanceof TypeError) throw err;
    const e = mapNatsError(err, { action: `open cache on bucket "${o.bucket}"`, bucket: o.bucket });
    // A replica with a warm-start snapshot serves it, marked stale, while NATS
    // is unreachable, and binds in the background; anything else fails now.
    if (!(e instanceof UnavailableError) || o.mode !== "replica" || !o.snapshot) throw e;
    const cache = new KvedgeCache<T>({
      options: o,
      ownsConnection: owns,
      ...unboundLink(e),
      inboxPrefix,
    });
    await cache.startUnbound(() => bind(o), e);
    return cache;
  }
  inboxPrefix = inboxPrefixOf(link.nc) ?? inboxPrefix;
  let cache: KvedgeCache<T> | undefined;
  try {
    cache = new KvedgeCache<T>({ options: o, ownsConnection: owns, ...link, inboxPrefix });
    await cache.start();
    return cache;
  } catch (err) {
    // A start that failed half-way has timers and a status loop running: stop them.
    await cache?.close().catch(() => {});
    if (owns) await link.nc.close().catch(() => {});
    throw mapNatsError(err, { action: `open cache on bucket "${o.bucket}"`, bucket: o.bucket });
  }
}

/** Connects (or uses `connection`), ensures the bucket and binds the handles the cache needs. */
async function bind<T>(o: ResolvedOptions<T>): Promise<CacheLink> {
  let nc: NatsConnection;
  const owns = o.connection === undefined;
  if (o.connection) {
    nc = o.connection;
  } else {
    // ws:// and wss:// URLs select the WebSocket transport (src/connect.ts).
    nc = await connectNats({
      ...RECONNECT_POLICY,
      ...o.connectOptions,
      servers: o.servers,
    } as ConnectNatsOptions);
  }
  try {
    // Control calls (stream info, consumer create) can take seconds on a large
    // bucket; they run in the background and must not share the miss deadline.
    const jsm = await jetstreamManager(nc, { timeout: CONTROL_TIMEOUT_MS, checkAPI: false });
    const js = jetstream(nc, { timeout: o.writeTimeoutMs });
    const info = await ensureBucket(nc, {
      bucket: o.bucket,
      create: o.create,
      timeoutMs: o.writeTimeoutMs,
    });
    const readJs = jetstream(nc, { timeout: o.missTimeoutMs });
    // A regional mirror keeps the bucket's name, so binding by name reads the right subjects.
    const kv = await new Kvm(readJs).open(o.bucket, { allow_direct: o.allowDirect });
    const region = o.region && {
      writePrefix: hubWritePrefix(info, { bucket: o.bucket, hubDomain: o.region.hubDomain }),
      link: new RegionLink({
        jsm,
        bucket: o.bucket,
        region: o.region,
        info,
        hub: await jetstreamManager(nc, {
          timeout: CONTROL_TIMEOUT_MS,
          checkAPI: false,
          domain: o.region.hubDomain,
        }),
      }),
    };
    return { nc, jsm, js, kv, info, region };
  } catch (err) {
    if (owns) await nc.close().catch(() => {});
    throw err;
  }
}

/**
 * Stand-ins for the connection's handles while a cache opened from its
 * snapshot has no connection yet. Every path that would use them checks the
 * connection first; one that did not would get this `UnavailableError`.
 */
function unboundLink(cause: UnavailableError): CacheLink {
  const unbound = <X>(): X =>
    new Proxy({}, {
      get() {
        throw new UnavailableError("Cannot reach NATS: not connected since open", { cause });
      },
    }) as X;
  const info = {
    created: "",
    config: { max_age: 0 },
    state: { first_seq: 0, last_seq: 0 },
  } as unknown as StreamInfo;
  return { nc: unbound(), jsm: unbound(), js: unbound(), kv: unbound(), info };
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
  want: { bucket: string; create: ReturnType<typeof resolveOptions>["create"]; timeoutMs: number },
): Promise<StreamInfo> {
  const { bucket, create, timeoutMs } = want;
  const jsm = await jetstreamManager(nc, { timeout: timeoutMs, checkAPI: false });
  const stream = kvStreamName(bucket);
  if (create) {
    if (create.markerTtlMs > 0) {
      // An older server would drop the unknown settings and make a bucket without TTL.
      assertServerVersion(nc, {
        feature: "per-key TTL",
        requiredVersion: PER_KEY_TTL_VERSION,
        action: `create bucket "${bucket}"`,
      });
    }
    // The stream natscli's `nats kv add` makes, so either tool accepts the other's bucket.
    await ensureKvBucket(jsm, bucket, {
      replicas: create.replicas,
      history: create.history,
      ttlMs: create.ttlMs,
      maxBytes: create.maxBytes,
      maxValueSize: create.maxValueSize,
      storage: create.storage === "memory" ? "memory" : "file",
      markerTtlMs: create.markerTtlMs,
    });
  }
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    throw mapNatsError(err, { action: `open cache on bucket "${bucket}"`, bucket });
  }
}

/**
 * kvedge — an edge cache for NATS JetStream KV: a bounded in-process LRU kept
 * fresh by a revision-checked watcher. This is the entry point of the cache:
 * `openCache()`, its types, its errors and `Bookmark`.
 *
 * The other audiences have their own entry points, so that a program that
 * only caches does not load Hono or the projection runner:
 *
 * - `@kvedge/kvedge/http` (`http.ts`): the HTTP facade, `createApp()` and
 *   `createFetchHandler()`;
 * - `@kvedge/kvedge/projection` (`projection.ts`): `defineProjection()` and
 *   `runProjection()`;
 * - `@kvedge/kvedge/workerd` (`workerd.ts`): Cloudflare's runtime.
 *
 * @example Open a cache, write and read a key
 * ```ts ignore
 * import { openCache } from "@kvedge/kvedge";
 * const users = await openCache<{ name: string }>({
 *   servers: "nats://127.0.0.1:4222",
 *   bucket: "users",
 *   create: { history: 5 },
 *   local: { maxItems: 100_000 },
 * });
 * await users.ready();
 * await users.set("user.42", { name: "Ada" });
 * console.log(await users.get("user.42"));
 * await users.close();
 * ```
 *
 * @module
 */
export { openCache, openReadonlyCache } from "./src/open.ts";
export { jsonCodec } from "./src/codec.ts";
export { Bookmark, BOOKMARK_MAX_BUCKETS, BOOKMARK_MAX_LENGTH } from "./src/bookmark.ts";
export { MAX_KEY_LENGTH } from "./src/keys.ts";
export {
  BookmarkError,
  type BookmarkErrorCode,
  BucketNotFoundError,
  ClosedError,
  ConflictError,
  DecodeError,
  type ErrorCode,
  KeyError,
  KvedgeError,
  LoaderError,
  OverflowError,
  OverloadedError,
  PermissionError,
  ProjectionMapError,
  TooLargeError,
  UnavailableError,
  UnsupportedError,
  UnsupportedRuntimeError,
  ValidationError,
  type ValidationIssue,
} from "./src/errors.ts";
export {
  type Cache,
  type CacheEvent,
  type CacheMode,
  type CacheOptions,
  type CacheState,
  type CacheStats,
  type CacheStatus,
  type Change,
  type ChangesOptions,
  type Codec,
  type CreateBucketOptions,
  type DeleteOptions,
  type Entry,
  ENTRY_OVERHEAD_BYTES,
  type EntrySource,
  type GetOptions,
  type HistoryEntry,
  type LoaderContext,
  type LoaderFn,
  type LocalBounds,
  type NatsConnectOptions,
  type Operation,
  type ReadonlyCache,
  type ReadyOptions,
  type RegionOptions,
  type RegionStatus,
  type SchemaLike,
  type SetOptions,
  type SharedConnection,
  type SnapshotOptions,
} from "./src/types.ts";
export type { SnapshotStorage } from "./src/snapshot_file.ts";

/**
 * kvedge — an edge cache for NATS JetStream KV: a bounded in-process LRU kept
 * fresh by a revision-checked watcher, with an HTTP facade and projections.
 *
 * @example
 * ```ts ignore
 * import { openCache } from "./mod.ts";
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
export {
  type AppAuthOptions,
  type AppBucketOptions,
  type AppLimits,
  type AppReadinessOptions,
  type CorsOptions,
  createApp,
  type CreateAppOptions,
  type HttpApp,
  type ProblemCode,
  type RequestInfo,
} from "./src/http/app.ts";
export {
  createFetchHandler,
  type FetchHandler,
  type FetchHandlerBucketOptions,
  type FetchHandlerOptions,
} from "./src/http/fetch_handler.ts";
export { defineProjection } from "./src/projection/define.ts";
export { runProjection } from "./src/projection/runner.ts";
export type {
  Projection,
  ProjectionBucketSource,
  ProjectionContext,
  ProjectionEntry,
  ProjectionEvent,
  ProjectionMap,
  ProjectionOptions,
  ProjectionResult,
  ProjectionRunner,
  ProjectionSource,
  ProjectionState,
  ProjectionStatus,
  ProjectionStreamSource,
  ProjectionTargetOptions,
  ProjectionWrite,
  RunProjectionOptions,
} from "./src/projection/types.ts";

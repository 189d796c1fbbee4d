/**
 * The public shapes of a cache, by audience: its options
 * (`types/options.ts`), what it reports (`types/status.ts`: entries,
 * changes, stats, status, events) and its handles (`types/handles.ts`).
 * Types only: importing them costs nothing at run time.
 *
 * @module
 */
export {
  type CacheOptions,
  type Codec,
  type CreateBucketOptions,
  ENTRY_OVERHEAD_BYTES,
  type LoaderContext,
  type LoaderFn,
  type LocalBounds,
  type NatsConnectOptions,
  type RegionOptions,
  type SchemaLike,
  type SharedConnection,
  type SnapshotOptions,
} from "./types/options.ts";
export {
  type CacheEvent,
  type CacheMode,
  type CacheState,
  type CacheStats,
  type CacheStatus,
  type Change,
  type ChangesOptions,
  type Entry,
  type EntrySource,
  type HistoryEntry,
  type Operation,
  type RegionStatus,
} from "./types/status.ts";
export {
  type Cache,
  type DeleteOptions,
  type GetOptions,
  type ReadonlyCache,
  type ReadyOptions,
  type SetOptions,
} from "./types/handles.ts";

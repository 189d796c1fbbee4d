/**
 * The shapes `Freshness` (src/cache/freshness.ts) takes and gives: a change
 * from each source of a revision (watcher, fetch, own write, loader,
 * snapshot), its options, and the read side of the store it owns.
 *
 * @module
 */
import type { LocalStore } from "../local_store.ts";
import type { SnapshotImage } from "../snapshot.ts";
import type { CacheMode, Operation } from "../types.ts";

/**
 * The read side of the local store: lookups, slot copies, whole-store visits
 * and sizes. No method here changes a revision.
 *
 * @example
 * ```ts ignore
 * const view: StoreView = freshness.view;
 * const i = view.find("user.42");
 * if (i >= 0) console.log(view.revAt(i));
 * ```
 */
export type StoreView = Pick<
  LocalStore,
  | "find"
  | "findQuiet"
  | "flagsAt"
  | "valueAt"
  | "revAt"
  | "createdAt"
  | "rawAt"
  | "slotAt"
  | "get"
  | "peek"
  | "has"
  | "entries"
  | "forEach"
  | "records"
  | "size"
  | "bytes"
  | "evictions"
  | "negatives"
  | "negativeEvictions"
>;

/**
 * A watcher message (per message: the only source on the hot path).
 *
 * @example
 * ```ts ignore
 * freshness.apply({ source: "watch", key, op: "PUT", rev, created, raw: bytes, ttlMs: 0 });
 * ```
 */
export interface WatchChange {
  source: "watch";
  key: string;
  op: Operation;
  rev: number;
  /** When it was written, epoch ms (the server's clock). */
  created: number;
  /** The message's payload (copied if kept). */
  raw: Uint8Array;
  /** The value's own TTL (`Nats-TTL`), ms; 0 for none. */
  ttlMs: number;
}

/**
 * A read of KV: a miss fetch (`reserved`: under a reservation) or a leader read.
 *
 * @example
 * ```ts ignore
 * const slot = freshness.apply({ source: "fetch", key, rev: 0, created: Date.now(), raw: undefined, reserved: true });
 * ```
 */
export interface FetchChange {
  source: "fetch";
  key: string;
  /** The revision read; 0 when KV holds nothing for the key. */
  rev: number;
  created: number;
  /** The value's bytes; undefined for a delete or an absent key. */
  raw: Uint8Array | undefined;
  /** The value's own TTL (`Nats-TTL`), ms; 0 or omitted for none. */
  ttlMs?: number;
  /** A miss fetch holding a reservation: the higher of its answer and what the watcher recorded wins. */
  reserved?: boolean;
}

/**
 * An acknowledged own write: a value (decoded already) or a delete/purge.
 *
 * @example
 * ```ts ignore
 * freshness.apply({ source: "write", key, rev, created: Date.now(), op: "DEL" });
 * ```
 */
export type WriteChange =
  | {
    source: "write";
    key: string;
    rev: number;
    created: number;
    op: "PUT";
    value: unknown;
    encodedBytes: number;
  }
  | { source: "write"; key: string; rev: number; created: number; op: "DEL" | "PURGE" };

/**
 * A loader's answer (revision 0): a value, or undefined for "absent".
 *
 * @example
 * ```ts ignore
 * freshness.apply({ source: "loader", key, value: undefined, encodedBytes: 0, offline: false });
 * ```
 */
export interface LoaderChange {
  source: "loader";
  key: string;
  value: unknown;
  /** Length of the value's encoded form, bytes (0 for undefined). */
  encodedBytes: number;
  /** Answered while NATS was unreachable: dropped when the connection returns (rule 5). */
  offline: boolean;
}

/**
 * A warm-start snapshot, whole: the store takes its columns as its image
 * (`src/store_image.ts`); a record whose deadline (rule 6) passed while the
 * cache was down is not loaded, and the store's bounds apply.
 *
 * @example
 * ```ts ignore
 * const loaded = freshness.apply({ source: "snapshot", image: snap.image });
 * ```
 */
export interface SnapshotChange {
  source: "snapshot";
  image: SnapshotImage;
}

/**
 * A revision for the store, from any source, told apart by `source`.
 *
 * @example
 * ```ts ignore
 * const change: FreshnessChange = { source: "write", key, rev, created: Date.now(), op: "PURGE" };
 * ```
 */
export type FreshnessChange =
  | WatchChange
  | FetchChange
  | WriteChange
  | LoaderChange
  | SnapshotChange;

/**
 * Options of `Freshness`.
 *
 * @example
 * ```ts ignore
 * const options: FreshnessOptions = {
 *   mode: "lazy", maxItems: 1_000, maxBytes: 0, maxTtlMs: 0, maxNegativeShare: 0.25,
 *   allowDirect: false, negativeTtlMs: 0, appliedRevision: () => watcher.lastRevision,
 * };
 * ```
 */
export interface FreshnessOptions {
  /** `replica` holds every key; `lazy` what was read. */
  mode: CacheMode;
  /** The store's bounds: most slots, most bytes (0: none of that kind). */
  maxItems: number;
  maxBytes: number;
  /** Local TTL, ms (0: none); a store with one may lack keys ("lossy"). */
  maxTtlMs: number;
  /** Share of the bounds negative slots may take, (0, 1]. */
  maxNegativeShare: number;
  /** Direct gets may answer from a lagging replica: a replica keeps its delete tombstones. */
  allowDirect: boolean;
  /** How long a loader's "absent" is kept, ms (0: no TTL of its own). */
  negativeTtlMs: number;
  /** The highest revision the watcher applied. */
  appliedRevision: () => number;
  /** Hears evictions and too-large refusals; `overflow` is true for the one that made a replica lossy. */
  onRemove?: (removed: { key: string; reason: "evict" | "too_large"; overflow: boolean }) => void;
}

/**
 * What a miss fetch in flight recorded from the watcher for its key (rule 3).
 *
 * @example
 * ```ts ignore
 * const empty: Reservation = { rev: 0, created: 0, raw: undefined, ttlMs: 0 };
 * ```
 */
export interface Reservation {
  rev: number;
  created: number;
  raw: Uint8Array | undefined;
  /** The recorded revision's own TTL, ms; 0 for none. */
  ttlMs: number;
}

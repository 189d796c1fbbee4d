/**
 * Warm start of a replica: load the snapshot into the store (served as stale
 * until caught up), save it on a timer (held by the sync loop) and at close. `src/snapshot.ts` is the file format.
 *
 * @module
 */
import { loadSnapshot as readSnapshot, writeSnapshot } from "../snapshot.ts";
import type { SnapshotStorage } from "../snapshot_file.ts";
import { unref } from "../async.ts";
import { describe } from "../describe.ts";
import type { CacheCore } from "./core.ts";

/** Where a loaded snapshot leaves the watcher: its epoch, and the revision it resumes after. */
export interface SnapshotPosition {
  lastRevision: number;
  epoch: string;
}

/**
 * Loads a snapshot into the store (served as stale until caught up); returns
 * its position, or undefined if refused. `options.verified` is given the
 * position once the file checked out and the store is empty (so the load
 * cannot be refused), before the image loads: the sync loop places the
 * watcher there and starts it, so its first requests are out while the image
 * loads (no message is applied before: loading does not yield).
 */
export async function loadSnapshot<T>(
  c: CacheCore<T>,
  from: { storage: SnapshotStorage; epoch: string | undefined },
  options: { verified?: (at: SnapshotPosition) => void } = {},
): Promise<SnapshotPosition | undefined> {
  const { storage, epoch } = from;
  const { verified } = options;
  const freshness = c.freshness;
  const snap = await readSnapshot(storage, {
    bucket: c.bucket,
    filter: c.o.keys,
    accept: (header) =>
      epoch === undefined || header.epoch === epoch
        ? undefined
        : `bucket was recreated since the snapshot (epoch ${header.epoch})`,
  });
  // The store takes the file's columns as its image (src/store_image.ts),
  // keeping each key and value in the file's buffer until first touched. A
  // value whose deadline (rule 6) passed while the cache was down is not
  // loaded: KV has dropped it too (its own TTL), or it was bounded by this
  // cache's maxTtlMs, whose snapshots are partial (absent there means "ask").
  if (snap.ok && freshness.view.size === 0) {
    verified?.({ lastRevision: snap.header.lastRevision, epoch: snap.header.epoch });
  }
  const loaded = snap.ok && freshness.apply({ source: "snapshot", image: snap.image });
  if (!snap.ok || !loaded) {
    const detail = snap.ok ? "the store was not empty" : snap.reason;
    c.emit({ type: "snapshot", at: Date.now(), action: "ignored", detail });
    return undefined;
  }
  const { header } = snap;
  if (header.partial) {
    // A fraction of the bucket (a lazy cache's, an overflowed or TTL-bounded
    // replica's): a missing key is not absent until a full resync.
    freshness.loadedPartial();
  }
  c.snapshotMark.mark(header.lastRevision);
  c.emit({
    type: "snapshot",
    at: Date.now(),
    action: "loaded",
    detail: `${header.count} entries at revision ${header.lastRevision}`,
  });
  return { lastRevision: header.lastRevision, epoch: header.epoch };
}

/** Saves the snapshot every `intervalMs` while synced; the sync loop holds the timer. */
export function startSnapshotTimer<T>(
  c: CacheCore<T>,
): ReturnType<typeof setInterval> | undefined {
  const every = c.o.snapshot!.intervalMs;
  if (every <= 0) return undefined;
  const timer = setInterval(() => {
    if (c.life.fresh) saveSnapshot(c).catch(() => {});
  }, every);
  unref(timer);
  return timer;
}

/**
 * Writes the replica to the snapshot file now (only when synced and changed
 * since the last save). Resolves to whether a file was written.
 */
export async function saveSnapshot<T>(c: CacheCore<T>): Promise<boolean> {
  const snap = c.o.snapshot;
  if (!snap || !c.life.isReady || c.life.resyncing) return false;
  const rev = c.sync.watcher.lastRevision;
  if (c.snapshotMark.holds(rev)) return false;
  // What the store holds, most recently used first (`snapshotRecords` in src/store_scan.ts).
  const records = c.freshness.view.records((v) => c.o.codec.encode(v as T));
  try {
    const header = await writeSnapshot(snap.storage, {
      header: {
        bucket: c.bucket,
        filter: c.o.keys,
        epoch: c.sync.lastInfo?.created ?? c.sync.link.info.created,
        lastRevision: rev,
        // Complete only when this cache holds every key of its filter: a lazy
        // cache holds what was read, a lossy replica (overflowed, TTL-bounded,
        // or itself loaded from a partial snapshot) may lack some.
        partial: c.mode === "lazy" || c.freshness.lossy,
      },
      records,
    });
    c.snapshotMark.mark(rev);
    c.emit({
      type: "snapshot",
      at: Date.now(),
      action: "saved",
      detail: `${header.count} entries at revision ${rev}`,
    });
    return true;
  } catch (err) {
    c.life.recordError(`snapshot not saved: ${describe(err)}`);
    c.emit({ type: "error", at: Date.now(), message: c.life.lastError! });
    return false;
  }
}

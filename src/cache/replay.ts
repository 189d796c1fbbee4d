/**
 * Replay: `changes({ fromRevision })` runs a dedicated watcher from that
 * revision, then follows live changes; it ends with a recreated bucket.
 *
 * @module
 */
import { Broadcast } from "../broadcast.ts";
import type { Change, ChangesOptions } from "../types.ts";
import { Watcher } from "../watcher.ts";
import type { WatcherHandler } from "../watcher_handler.ts";
import { describe } from "../describe.ts";
import { type CacheCore, toChange } from "./core.ts";

/** A dedicated watcher replaying from a revision, then following live changes. */
export function replay<T>(
  c: CacheCore<T>,
  options: ChangesOptions,
): AsyncIterableIterator<Change<T>> {
  const from = options.fromRevision!;
  if (!Number.isInteger(from) || from < 1) {
    throw new RangeError(
      `Cannot follow changes: "fromRevision" must be a positive integer, got ${from}`,
    );
  }
  const out = new Broadcast<Change<T>>();
  const it = out.iterate(options);
  const run: ReplayRun<T> = { out, last: from - 1, ended: false, stop: () => {} };
  const watcher = new Watcher({
    nc: c.sync.link.nc,
    jsm: c.sync.link.jsm,
    bucket: c.bucket,
    filter: options.filter ?? c.o.keys,
    heartbeatMs: c.o.heartbeatMs,
    inboxPrefix: c.sync.link.inboxPrefix,
    handler: replayHandler(c, run),
  });
  // `fromRevision` counts in the bucket the cache knows: a bucket recreated
  // since (even one with more revisions) must end the replay, which only the
  // stream's creation time tells.
  watcher.place({
    lastRevision: from - 1,
    epoch: c.sync.watcher.epoch ?? c.sync.lastInfo?.created ?? c.sync.link.info?.created,
  });
  // Every way the replay ends removes its listeners from the long-lived
  // signals, so a finished replay keeps nothing alive.
  let stopped = false;
  const stop = run.stop = () => {
    if (stopped) return;
    stopped = true;
    c.aborter.signal.removeEventListener("abort", stop);
    options.signal?.removeEventListener("abort", stop);
    void watcher.close();
    out.close();
  };
  c.aborter.signal.addEventListener("abort", stop, { once: true });
  options.signal?.addEventListener("abort", stop, { once: true });
  watcher.start({ kind: "seq", seq: from }, "replay").catch((err) => {
    c.life.recordError(`replay failed: ${describe(err)}`);
    stop();
  });
  const ret = it.return!.bind(it);
  it.return = (v?: unknown) => {
    stop();
    return ret(v);
  };
  return it;
}

/** What a replay's watcher callbacks share with it. */
interface ReplayRun<T> {
  /** Where the changes go. */
  out: Broadcast<Change<T>>;
  /** The last revision delivered. */
  last: number;
  /** Whether the replay ended (a recreated bucket). */
  ended: boolean;
  /** Ends the replay. */
  stop: () => void;
}

/** The replay watcher's handler: every change to `run.out`; a recreated bucket ends it. */
function replayHandler<T>(c: CacheCore<T>, run: ReplayRun<T>): WatcherHandler {
  return {
    onChange: (key, op, rev, created, data) => {
      run.last = rev;
      run.out.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
    },
    onCaughtUp: () => {},
    onResync: (req) => {
      if (req.epochChanged) {
        // Revisions start over in a recreated bucket: the replay cannot go
        // on, so it ends (the watcher stops once its consumer exists).
        run.ended = true;
        c.life.recordError(`replay ended: ${req.reason}`);
        run.out.close();
      } else {
        c.life.recordError(`replay resumed after revision ${run.last}: ${req.reason}`);
      }
      // Resume after what was delivered: the server starts at the oldest
      // revision it still has, never at revision 1 again.
      return { kind: "seq", seq: run.last + 1 };
    },
    onRestart: () => {},
    onStarted: () => {
      if (run.ended) run.stop();
    },
    onError: () => {
      if (run.ended) run.stop();
    },
    onStreamInfo: () => {},
  };
}

async function* filteredGen<V>(it: AsyncIterableIterator<V>, keep: (v: V) => boolean) {
  try {
    for await (const v of it) if (keep(v)) yield v;
  } finally {
    await it.return?.();
  }
}

export function filtered<V>(
  it: AsyncIterableIterator<V>,
  keep: (v: V) => boolean,
): AsyncIterableIterator<V> {
  return filteredGen(it, keep);
}

/**
 * Reads with a bookmark (rule 8): never older than the revision asked for.
 * Answered locally when the cache has applied its bucket up to it; else after
 * waiting up to `bookmarkWaitMs` for the watcher; else from where the answer
 * cannot be older: a get answered by the stream leader (not a direct get,
 * which any lagging replica may answer), in a region the local mirror once
 * it holds the revision, else the hub. What such a fallback read returns
 * goes through rule 1 like a miss fetch (`Freshness.apply`), or, for a key a lazy cache
 * does not hold, is served once and not kept (no reservation guards it, so
 * a watcher event for the key during the read could otherwise be lost).
 *
 * @module
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Bookmark } from "../bookmark.ts";
import { BookmarkError, ClosedError, OverloadedError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { assertKey } from "../keys.ts";
import { kvStreamName, kvSubject, operationOf } from "../kv_layout.ts";
import type { Slot } from "../slot.ts";
import type { EntrySource, GetOptions } from "../types.ts";
import { assertInFilter, type CacheCore } from "./core.ts";
import { getSlow, present } from "./read_path.ts";
import { servable } from "./offline.ts";

/**
 * A bookmark more than this many revisions past the bucket's last sequence
 * (as its leader reports it) is refused as `BOOKMARK_AHEAD` at once; one
 * less far ahead fails only after the wait, retryably (nats-server 2.9.10
 * has been seen to report a last sequence below an acknowledged write just
 * after a pause).
 */
export const AHEAD_SLACK = 1_000;

/** What a bookmarked read answers (undefined: absent). */
export interface AtLeastAnswer<T> {
  value: T;
  slot: Slot;
  source: EntrySource;
  /** Served by `allowStale` without reaching the bookmark. */
  belowBookmark: boolean;
}

/**
 * The revision of `bucket` that `atLeast` asks for (0: none). Throws a
 * `RangeError` for a number that is not a non-negative safe integer.
 */
export function revisionAsked(bucket: string, atLeast: number | Bookmark | undefined): number {
  if (atLeast === undefined) return 0;
  if (typeof atLeast !== "number") return atLeast.revision(bucket);
  if (!Number.isSafeInteger(atLeast) || atLeast < 0) {
    throw new RangeError(
      `Cannot read: "atLeast" must be a non-negative integer revision, got ${atLeast}`,
    );
  }
  return atLeast;
}

/**
 * The revision up to which the cache has applied every change of its bucket,
 * 0 when it cannot say: while bootstrapping or resyncing (the snapshot comes
 * last-per-key, not in order) and while resuming across a history gap.
 */
export function appliedThrough<T>(c: CacheCore<T>): number {
  if (c.life.state === "synced") return c.sync.watcher.lastRevision;
  if (c.life.state !== "stale" || !c.life.isReady || c.life.resyncing || c.freshness.acrossGap) {
    return 0;
  }
  return c.sync.watcher.lastRevision;
}

/** The highest revision known to exist in the bucket now. */
function known<T>(c: CacheCore<T>): number {
  const epoch = c.sync.watcher.epoch;
  c.reached.learn(c.sync.watcher.lastRevision, epoch);
  const mirror = c.sync.link.region?.link.status().mirrorLastRevision ?? 0;
  if (mirror > 0) c.reached.learn(mirror, epoch);
  return c.reached.known(epoch);
}

const NOT_LOCAL = Symbol("not local");

/** A read no older than a revision, as asked. */
export interface AtLeastAsk {
  /** The key. */
  key: string;
  /** The revision (> 0) the answer must not be older than. */
  rev: number;
  /** The read's options (`signal`, `allowStale`). */
  options: GetOptions;
  /** Counts a fresh local answer (the facade owns that counter). */
  countHit: () => void;
}

/** A read of `ask.key` no older than revision `ask.rev`. */
export async function getAtLeast<T>(
  c: CacheCore<T>,
  ask: AtLeastAsk,
): Promise<AtLeastAnswer<T> | undefined> {
  const { key, rev, options } = ask;
  if (c.life.closed) throw new ClosedError("get");
  assertKey(key, "get");
  assertInFilter(c, key, "get");
  const deadline = Date.now() + c.o.bookmarkWaitMs;
  let probe: Promise<void> | undefined;
  let probing = false;
  for (;;) {
    const local = await localAnswer(c, ask);
    if (local !== NOT_LOCAL) return local;
    if (c.life.closed) throw new ClosedError("get");
    if (!c.life.connected) return unreached(c, ask, { why: "NATS is disconnected" });
    if (probe === undefined && rev > known(c)) {
      probing = true;
      probe = checkNotAhead(c, rev).finally(() => {
        probing = false;
      });
      probe.catch(() => {});
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const woken = c.reached.until(rev, { timeoutMs: remaining, signal });
    try {
      // A probe that finds the bookmark far ahead ends the wait at once.
      await (probing ? Promise.race([woken, probe]) : woken);
    } finally {
      stop.abort();
    }
    options.signal?.throwIfAborted();
  }
  return await fallback(c, ask, { probe });
}

/** The local answer if the cache can give one no older than `rev`, else NOT_LOCAL. */
async function localAnswer<T>(
  c: CacheCore<T>,
  ask: AtLeastAsk,
): Promise<AtLeastAnswer<T> | undefined | typeof NOT_LOCAL> {
  const { key, rev, options } = ask;
  const store = c.freshness.view;
  const i = store.find(key);
  const slot = i < 0 ? undefined : store.slotAt(i);
  const applied = appliedThrough(c);
  // The loader's answers given while NATS was unreachable vouch for no
  // revision, and a miss now would ask the loader again.
  if (!c.life.connected && c.o.loader && (slot === undefined || c.freshness.unchecked(key))) {
    return NOT_LOCAL;
  }
  if (slot !== undefined && servable(c) && (slot.rev >= rev || applied >= rev)) {
    // Resident at `rev` or later (an own write, a fallback read), or resident
    // in a cache that applied every change up to `rev`.
    if (c.life.fresh) ask.countHit();
    else c.counters.add("staleHits");
    if (!present(c, key, slot)) return undefined;
    return {
      value: slot.value as T,
      slot,
      source: c.life.fresh ? "hit" : "stale",
      belowBookmark: false,
    };
  }
  if (applied < rev) return NOT_LOCAL;
  // Applied up to `rev` but not resident: a plain miss reads the leader (or a
  // complete replica answers "absent"); a direct get might not, so read here.
  if (c.o.allowDirect && !(c.mode === "replica" && c.life.fresh && !c.freshness.lossy)) {
    return await fallback(c, ask, {});
  }
  const r = await getSlow(c, key, undefined, options);
  return r === undefined ? undefined : { ...r, belowBookmark: false };
}

/** Rejects with `BOOKMARK_AHEAD` if the bucket's leader is far behind `rev`; otherwise resolves. */
async function checkNotAhead<T>(c: CacheCore<T>, rev: number): Promise<void> {
  let last: number;
  try {
    last = await c.reached.probe(async () => {
      const jsm = await manager(c.sync.link.nc, {
        timeoutMs: c.o.missTimeoutMs,
        domain: c.sync.link.region?.link.status().hubDomain,
      });
      return (await jsm.streams.info(kvStreamName(c.bucket))).state.last_seq;
    });
  } catch {
    return; // unreachable: the fallback read finds out and says so
  }
  c.reached.learn(last, c.sync.watcher.epoch);
  if (rev > last + AHEAD_SLACK) {
    throw new BookmarkError(
      "BOOKMARK_AHEAD",
      `Cannot read bucket "${c.bucket}" at revision ${rev}: its last revision is ${last}`,
      { bucket: c.bucket, revision: rev, reached: appliedThrough(c) },
    );
  }
}

/**
 * Reads `key` where the answer cannot be older than `rev`; `options.probe`
 * is the check that the bookmark is not far ahead, if one was started.
 */
async function fallback<T>(
  c: CacheCore<T>,
  ask: AtLeastAsk,
  options: { probe?: Promise<void> },
): Promise<AtLeastAnswer<T> | undefined> {
  const { key, rev } = ask;
  const { probe } = options;
  if (!c.life.connected) return unreached(c, ask, { why: "NATS is disconnected" });
  const region = c.sync.link.region?.link.status();
  // A mirror that held `rev` at its last check holds it now (it only grows).
  const fromMirror = region !== undefined && region.mirrorLastRevision >= rev;
  const where = region === undefined ? "the stream leader" : fromMirror ? "the mirror" : "the hub";
  // These reads count against the bound of misses in flight, with them.
  if (c.flight.size + c.reached.fetching >= c.o.maxConcurrentMisses) {
    c.counters.add("shedMisses");
    throw new OverloadedError(
      `Cannot get "${key}" at revision ${rev}: ${c.o.maxConcurrentMisses} misses are in flight (maxConcurrentMisses); retry later`,
      c.o.maxConcurrentMisses,
    );
  }
  let got: { rev: number; created: number; raw: Uint8Array | undefined };
  c.reached.beginFetch();
  try {
    const jsm = await manager(c.sync.link.nc, {
      timeoutMs: c.o.missTimeoutMs,
      domain: region !== undefined && !fromMirror ? region.hubDomain : undefined,
    });
    c.counters.add("fetches");
    const m = await jsm.streams.getMessage(kvStreamName(c.bucket), {
      last_by_subj: kvSubject(c.bucket, key),
    });
    got = m === null ? { rev: 0, created: Date.now(), raw: undefined } : {
      rev: m.seq,
      created: m.time.getTime(),
      raw: operationOf(m.header) === "PUT" ? m.data : undefined,
    };
  } catch (err) {
    const e = mapNatsError(err, { action: `get "${key}"`, bucket: c.bucket, key });
    return unreached(c, ask, { why: `${where} did not answer (${e.message})`, cause: e });
  } finally {
    c.reached.endFetch();
  }
  c.counters.add("misses");
  if (got.rev < rev && !fromMirror) {
    // The key's latest is older than the bookmark: right if the bucket has
    // reached `rev` (the leader holds every acknowledged write), which a real
    // bookmark guarantees; a probe tells a forged or foreign one.
    if (probe !== undefined) await probe;
    if (known(c) < rev) {
      return unreached(c, ask, { why: `${where} could not vouch for revision ${rev}` });
    }
  }
  let slot: Slot;
  if (got.rev === 0) {
    return undefined; // no message for the key at all: absent, whatever an older slot says
  } else if (c.freshness.follows(key)) {
    // Rule 1: the watcher stores every change of a held key (or, in a
    // replica, of every key), so the higher revision wins whoever comes last.
    slot = c.freshness.apply({ source: "fetch", key, ...got });
  } else {
    slot = {
      rev: got.rev,
      created: got.created,
      deleted: got.raw === undefined,
      raw: got.raw,
      value: undefined,
      size: 0,
      gen: 0,
    };
  }
  if (!present(c, key, slot)) return undefined;
  return { value: slot.value as T, slot, source: "miss", belowBookmark: false };
}

/** The bookmark cannot be honoured: a typed error, or with `allowStale` what is held, marked. */
function unreached<T>(
  c: CacheCore<T>,
  ask: AtLeastAsk,
  failure: { why: string; cause?: unknown },
): AtLeastAnswer<T> | undefined {
  const { key, rev, options } = ask;
  const { why, cause } = failure;
  const err = new BookmarkError(
    "BOOKMARK_NOT_REACHED",
    `Cannot get "${key}" at revision ${rev} or later: ${why}`,
    { bucket: c.bucket, revision: rev, reached: appliedThrough(c), cause },
  );
  if (!options.allowStale) throw err;
  const slot = c.freshness.view.peek(key);
  if (slot === undefined || !servable(c)) throw err;
  c.counters.add("staleHits");
  // An absent answer carries no mark: a held deletion (or negative entry)
  // below the bookmark fails like no answer at all.
  if (!present(c, key, slot)) throw err;
  return { value: slot.value as T, slot, source: "stale", belowBookmark: true };
}

/**
 * Waits until the cache has applied its bucket up to `rev` (`ready({ atLeast })`),
 * at most `timeoutMs` if given; rejects at once for a bookmark far ahead.
 */
export async function waitApplied<T>(
  c: CacheCore<T>,
  rev: number,
  options: { signal?: AbortSignal; timeoutMs?: number },
): Promise<void> {
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  let probe: Promise<void> | undefined;
  while (appliedThrough(c) < rev) {
    if (c.life.closed) throw new ClosedError("wait for the bookmark");
    options.signal?.throwIfAborted();
    if (probe === undefined && c.life.connected && rev > known(c)) {
      probe = checkNotAhead(c, rev);
      probe.catch(() => {});
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new BookmarkError(
        "BOOKMARK_NOT_REACHED",
        `Cannot get ready at revision ${rev}: applied up to ${
          appliedThrough(c)
        } within ${options.timeoutMs} ms`,
        { bucket: c.bucket, revision: rev, reached: appliedThrough(c) },
      );
    }
    // Waking is on applied changes; a state change (caught up) is seen on the next turn.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const woken = c.reached.until(rev, { timeoutMs: Math.min(remaining, 100), signal });
    try {
      await (probe === undefined ? woken : Promise.race([woken, probe]));
    } finally {
      stop.abort();
    }
  }
}

/** One JetStream manager per connection, deadline and domain (making one does no I/O). */
const managers = new WeakMap<NatsConnection, Map<string, Promise<JetStreamManager>>>();

function manager(
  nc: NatsConnection,
  options: { timeoutMs: number; domain: string | undefined },
): Promise<JetStreamManager> {
  const { timeoutMs, domain } = options;
  let byKey = managers.get(nc);
  if (byKey === undefined) managers.set(nc, byKey = new Map());
  const k = `${timeoutMs}/${domain ?? ""}`;
  let m = byKey.get(k);
  if (m === undefined) {
    m = jetstreamManager(nc, {
      timeout: timeoutMs,
      checkAPI: false,
      ...(domain === undefined ? {} : { domain }),
    });
    byKey.set(k, m);
  }
  return m;
}

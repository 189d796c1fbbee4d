/**
 * The read path beyond a hit (which the facade checks inline): a stale
 * serve, a miss through single flight with a reservation (rule 3), the
 * loader (cache-aside, write-back, rule 5's offline answers), and decoding
 * a slot once (a refused value is a `DecodeError`, never an absent key).
 *
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import {
  ClosedError,
  ConflictError,
  DecodeError,
  LoaderError,
  OverloadedError,
  UnavailableError,
} from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { entryHeaders, ttlOfHeader } from "../kv_layout.ts";
import { assertKey } from "../keys.ts";
import type { Slot } from "../slot.ts";
import type { EntrySource, GetOptions } from "../types.ts";
import { describe } from "../describe.ts";
import { assertInFilter, type CacheCore } from "./core.ts";
import { abortable, deadline, DeadlineError } from "../async.ts";
import { fellOffline, missOffline, servable } from "./offline.ts";
import { encode, publish } from "./writer.ts";

/** The value of resident slot `i` that is a tombstone or not decoded yet (decodes it once). */
export function hitValue<T>(c: CacheCore<T>, key: string, i: number): T | undefined {
  const slot = c.freshness.view.slotAt(i);
  if (!present(c, key, slot)) return undefined;
  return slot.value as T;
}

export async function getSlow<T>(
  c: CacheCore<T>,
  key: string,
  slot: Slot | undefined,
  options: GetOptions | undefined,
): Promise<{ value: T; slot: Slot; source: EntrySource } | undefined> {
  if (c.life.closed) throw new ClosedError("get");
  assertKey(key, "get");
  assertInFilter(c, key, "get");
  if (slot !== undefined && servable(c)) {
    // Resident but not fresh: disconnected, restarting or resyncing.
    c.counters.add("staleHits");
    if (!present(c, key, slot)) return undefined;
    return { value: slot.value as T, slot, source: "stale" };
  }
  c.counters.add("misses");
  if (c.mode === "replica" && c.life.fresh && !c.freshness.lossy) return undefined;
  if (c.flight.size >= c.o.maxConcurrentMisses && !c.flight.has(key)) {
    c.counters.add("shedMisses");
    throw new OverloadedError(
      `Cannot get "${key}": ${c.o.maxConcurrentMisses} misses are in flight (maxConcurrentMisses); retry later`,
      c.o.maxConcurrentMisses,
    );
  }
  let fetched = c.flight.run(key, () => fetch(c, key));
  if (options?.signal) fetched = abortable(fetched, options.signal);
  const got = await fetched;
  if (got === undefined || !present(c, key, got)) return undefined;
  // A regional mirror cut off from the hub answers, but cannot vouch for it.
  const source = c.sync.link.region?.link.inSync === false ? "stale" : "miss";
  return { value: got.value as T, slot: got, source };
}

/** One miss: reserve the key, read KV (or the loader), keep the higher revision. */
export async function fetch<T>(c: CacheCore<T>, key: string): Promise<Slot | undefined> {
  // Rule 7: while NATS is down the loader answers, or the miss fails now.
  if (missOffline(c, key)) return load(c, key, { connected: false });
  // Rule 3 needs the watcher running before a fetched value may be cached.
  // Waiting for it counts against the miss's deadline: a watcher attaching
  // (a snapshot-opened replica binding once NATS answers) may take its
  // control deadlines (up to 15 s) to start. Once it has settled, a miss
  // goes on at once (no timer, no extra turn: src/cache/start_gate.ts).
  const starting = c.sync.starting;
  if (starting !== undefined) await watcherStarted(c, { key, starting });
  c.freshness.reserve(key);
  try {
    c.counters.add("fetches");
    let entry: KvEntry | null;
    try {
      entry = await c.sync.link.kv.get(key);
    } catch (err) {
      if (fellOffline(c)) return load(c, key, { connected: false });
      throw mapNatsError(err, { action: `get "${key}"`, bucket: c.bucket, key });
    }
    if (entry === null && c.freshness.reservedRevision(key) === 0 && c.o.loader) {
      return await load(c, key, { connected: true });
    }
    if (entry === null) {
      return c.freshness.apply({
        source: "fetch",
        key,
        rev: 0,
        created: Date.now(),
        raw: undefined,
        reserved: true,
      });
    }
    const raw = entry.operation === "PUT" ? entry.value : undefined;
    return c.freshness.apply({
      source: "fetch",
      key,
      rev: entry.revision,
      created: entry.created.getTime(),
      raw,
      ttlMs: raw === undefined ? 0 : ttlOfHeader(entryHeaders(entry)),
      reserved: true,
    });
  } finally {
    c.freshness.release(key);
  }
}

/**
 * Waits for the watcher's `starting` (a start or attach) at most
 * `missTimeoutMs`; then the miss of `key` fails with `UnavailableError`, as a
 * fetch that timed out does.
 */
async function watcherStarted<T>(
  c: CacheCore<T>,
  miss: { key: string; starting: Promise<void> },
): Promise<void> {
  const { key, starting } = miss;
  const ms = c.o.missTimeoutMs;
  const started = starting.then(() => {}, () => {});
  await deadline(started, ms).catch(() => {
    throw new UnavailableError(
      `Cannot get "${key}": the watcher of bucket "${c.bucket}" did not start within ${ms} ms`,
    );
  });
}

/**
 * Asks the origin for a key absent from KV; optionally writes it back with
 * create(). `options.connected`: whether KV was read first (false: NATS is
 * down, rule 5).
 */
export async function load<T>(
  c: CacheCore<T>,
  key: string,
  options: { connected: boolean },
): Promise<Slot | undefined> {
  const { connected } = options;
  c.counters.add("loads");
  const value = await callLoader(c, key);
  // Rule 5: what the loader said during an outage is not checked against KV,
  // so it is dropped when the connection returns (`Freshness.reconnected`);
  // an answer that arrives after the return is served once and not kept.
  const unchecked = !connected && c.life.connected;
  const offline = !connected && !unchecked;
  if (value === undefined) {
    if (unchecked) return undefined;
    return c.freshness.apply({ source: "loader", key, value, encodedBytes: 0, offline });
  }
  const { value: checked, bytes } = encode(c, { key, value, action: "load" });
  if (unchecked) return looseSlot(checked);
  if (c.o.writeBack && connected) return await writeBack(c, key, { value: checked, bytes });
  const encodedBytes = bytes.byteLength;
  return c.freshness.apply({ source: "loader", key, value: checked, encodedBytes, offline }) ??
    looseSlot(checked);
}

/**
 * Calls the loader for `key`. A loader that never settles must not hold the
 * key's single-flight slot: at `loaderTimeoutMs` (or on close) its signal
 * aborts and the load rejects with `LoaderError`.
 */
async function callLoader<T>(c: CacheCore<T>, key: string): Promise<T | undefined> {
  const loader = c.o.loader!;
  const ac = new AbortController();
  const ms = c.o.loaderTimeoutMs;
  const closed = c.aborter.signal;
  try {
    const loaded = Promise.resolve().then(() => loader(key, { signal: ac.signal }));
    return await deadline(loaded, ms, { signal: closed });
  } catch (err) {
    // Cut short (the deadline, or close): the loader's signal says why.
    const cut = err instanceof DeadlineError
      ? new DOMException(`the loader did not settle within ${ms} ms`, "TimeoutError")
      : closed.aborted && err === closed.reason
      ? err
      : undefined;
    if (cut !== undefined) ac.abort(cut);
    throw new LoaderError(key, cut ?? err);
  }
}

/**
 * Writes a loaded value back to KV with create(); when somebody wrote the key
 * meanwhile, theirs wins and is read instead.
 */
async function writeBack<T>(
  c: CacheCore<T>,
  key: string,
  loaded: { value: T; bytes: Uint8Array },
): Promise<Slot | undefined> {
  const { value, bytes } = loaded;
  try {
    const rev = await publish(c, {
      key,
      data: bytes,
      op: "PUT",
      expected: 0,
      action: `write back "${key}"`,
    });
    const encodedBytes = bytes.byteLength;
    c.freshness.apply({
      source: "write",
      key,
      rev,
      created: Date.now(),
      op: "PUT",
      value,
      encodedBytes,
    });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    // Somebody wrote the key meanwhile: theirs wins; read it.
    const entry = await c.sync.link.kv.get(key).catch((e) => {
      throw mapNatsError(e, { action: `get "${key}"`, bucket: c.bucket, key });
    });
    if (entry !== null) {
      return c.freshness.apply({
        source: "fetch",
        key,
        rev: entry.revision,
        created: entry.created.getTime(),
        raw: entry.operation === "PUT" ? entry.value : undefined,
      });
    }
  }
  return c.freshness.view.peek(key);
}

/**
 * Whether a slot holds a value to serve (decoding it first if needed):
 * false for a tombstone; a value the codec or schema refused is a
 * {@link DecodeError}, so that it does not pass for an absent key.
 */
export function present<T>(c: CacheCore<T>, key: string, slot: Slot): boolean {
  if (slot.raw !== undefined) decode(c, key, slot);
  if (slot.rejected !== undefined) throw new DecodeError("get", key, slot.rev, slot.rejected);
  return !slot.deleted;
}

/** Decodes a slot's bytes once; a value failing the codec or schema becomes a tombstone. */
export function decode<T>(c: CacheCore<T>, key: string, slot: Slot): boolean {
  const raw = slot.raw!;
  slot.raw = undefined;
  try {
    let value: unknown = c.o.codec.decode(raw);
    if (c.o.schema) {
      const r = c.o.schema.safeParse(value);
      if (!r.success) throw new Error(`schema: ${r.error.issues[0]?.message ?? "invalid"}`);
      value = r.data;
    }
    slot.value = value;
    c.freshness.decoded(key, slot.rev, value);
    return true;
  } catch (err) {
    slot.deleted = true;
    slot.value = undefined;
    slot.rejected = err;
    c.freshness.rejected(key, slot.rev, err);
    c.counters.add("rejected");
    c.emit({
      type: "rejected",
      at: Date.now(),
      key,
      revision: slot.rev,
      reason: describe(err),
    });
    return false;
  }
}

/** A slot that is served once and not held. */
function looseSlot(value: unknown): Slot {
  return { rev: 0, created: Date.now(), deleted: false, raw: undefined, value, size: 0, gen: 0 };
}

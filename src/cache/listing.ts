/**
 * Listing: `keys()` (from the store when a replica holds the whole bucket,
 * else from KV) and `history()` (from KV).
 *
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import { ClosedError, TooLargeError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { assertFilter, assertKey, matchesFilter } from "../keys.ts";
import { SlotFlag } from "../slot.ts";
import type { HistoryEntry } from "../types.ts";
import { assertUp, type CacheCore, decodeOrUndefined, listsLocally } from "./core.ts";

/**
 * The keys matching `filter` (default: the cache's own filter); stops when
 * `options.signal` aborts.
 *
 * @example
 * ```ts ignore
 * for await (const key of listKeys(core, "users.>", {})) console.log(key);
 * ```
 */
export async function* listKeys<T>(
  c: CacheCore<T>,
  filter: string | undefined,
  options: { signal?: AbortSignal },
): AsyncIterable<string> {
  const { signal } = options;
  if (c.life.closed) throw new ClosedError("list keys");
  const f = filter ?? c.o.keys;
  assertFilter(f, "list keys");
  if (listsLocally(c)) {
    // Collected first: the store may change while the caller awaits between keys.
    const found: string[] = [];
    c.freshness.view.forEach((k, _rev, _created, flags) => {
      // A value the codec refused is still a key KV holds (a PUT).
      const present = (flags & SlotFlag.Deleted) === 0 || (flags & SlotFlag.Rejected) !== 0;
      if (present && (f === ">" || matchesFilter(f, k))) found.push(k);
    });
    for (const k of found) {
      if (signal?.aborted) return;
      yield k;
    }
    return;
  }
  assertUp(c, "list keys");
  let it: AsyncIterable<string> & { stop?: () => void };
  try {
    it = await c.sync.link.kv.keys(f);
  } catch (err) {
    throw mapNatsError(err, { action: "list keys", bucket: c.bucket });
  }
  // An abort stops the consumer at once, also while no key is arriving.
  const stop = () => it.stop?.();
  signal?.addEventListener("abort", stop, { once: true });
  try {
    if (signal?.aborted) return;
    for await (const k of it) {
      if (signal?.aborted) return;
      if (c.o.keys === ">" || matchesFilter(c.o.keys, k)) yield k;
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
  }
}

/**
 * Every revision KV still holds of `key`, oldest first, at most `maxBytes` of values.
 *
 * @example
 * ```ts ignore
 * const revisions = await history(core, "users.1", { maxBytes: 1 << 20 });
 * ```
 */
export async function history<T>(
  c: CacheCore<T>,
  key: string,
  options: { signal?: AbortSignal; maxBytes?: number },
): Promise<HistoryEntry<T>[]> {
  if (c.life.closed) throw new ClosedError("read history");
  assertKey(key, "read history");
  assertUp(c, `read history of "${key}"`);
  const { signal, maxBytes = Infinity } = options;
  const out: HistoryEntry<T>[] = [];
  let bytes = 0;
  let it: (AsyncIterable<KvEntry> & { stop?: () => void }) | undefined;
  try {
    it = await c.sync.link.kv.history({ key });
    for await (const e of it) {
      if (signal?.aborted) break;
      bytes += e.value.byteLength;
      if (bytes > maxBytes) throw new TooLargeError(`read history of "${key}"`, maxBytes);
      out.push({
        key: e.key,
        operation: e.operation,
        revision: e.revision,
        createdMs: e.created.getTime(),
        ...(e.operation === "PUT" ? { value: decodeOrUndefined(c, e.value) } : {}),
      });
    }
  } catch (err) {
    if (err instanceof TooLargeError) throw err;
    throw mapNatsError(err, { action: `read history of "${key}"`, bucket: c.bucket, key });
  } finally {
    it?.stop?.();
  }
  return out;
}

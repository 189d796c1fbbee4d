/**
 * Put → visible measurements shared by the propagation, regions and
 * websocket scenarios: a paced writer that records when each write id was
 * put, receivers that record when each id arrived (a raw `kv.watch()` and
 * a kvedge `cache.changes()`), one repetition's percentiles, and the rows
 * that hold kvedge's receipt to the raw watcher's.
 *
 * Write `i` puts the JSON number `i` at `p.<i % KEYS>`; writer and receiver
 * share this process's clock (`performance.now()` at the put call and at
 * the iterator's receipt).
 *
 * @module
 */
import { Kvm, KvWatchInclude } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Cache } from "../../mod.ts";
import { percentile, ratioRow, type Row, stat } from "./_harness.ts";
import { waitFor } from "../../testing/wait_for.ts";
import { delay } from "../../src/async.ts";

/** How many keys the writes cycle through. */
export const KEYS = 100;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The key write `i` goes to. */
export function idKey(i: number): string {
  return `p.${i % KEYS}`;
}

/** Puts write `i` (its id as JSON) into `kv`; resolves to the revision. */
export function putId(kv: KV): (i: number) => Promise<number> {
  return (i) => kv.put(idKey(i), enc.encode(String(i)));
}

/** Gives every key the value -1, an id no write has. */
export async function seedIds(kv: KV): Promise<void> {
  for (let k = 0; k < KEYS; k++) await kv.put(idKey(k), enc.encode("-1"));
}

/** The receiving side of a measurement. */
export interface Receiver {
  /** Receipt time per write id (NaN until received). */
  recv: Float64Array;
  /** How many distinct ids arrived. */
  received: () => number;
  /** Watcher restarts and resyncs seen (kvedge only; kv.watch() hides its own). */
  restarts: () => number;
  /** Stops receiving and closes what the receiver was given. */
  close(): Promise<void>;
}

/** Records the first receipt of each id 0..total-1 yielded by `items`. */
function receive<T>(
  items: AsyncIterable<T>,
  total: number,
  idOf: (item: T) => unknown,
): { recv: Float64Array; received: () => number; done: Promise<void> } {
  const recv = new Float64Array(total).fill(NaN);
  let n = 0;
  const done = (async () => {
    for await (const item of items) {
      const t = performance.now();
      const id = idOf(item);
      if (typeof id === "number" && id >= 0 && id < total && Number.isNaN(recv[id]!)) {
        recv[id] = t;
        n++;
      }
    }
  })();
  return { recv, received: () => n, done };
}

/**
 * A raw ordered `kv.watch()` of @nats-io/kv on `bucket` (updates only, the
 * id JSON-decoded at receipt). The receiver owns `nc` and closes it.
 */
export async function watchReceiver(
  nc: NatsConnection,
  bucket: string,
  total: number,
): Promise<Receiver> {
  const kv = await new Kvm(nc).open(bucket);
  const w = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
  const rx = receive(w, total, (e) => {
    if (e.operation !== "PUT") return undefined;
    return JSON.parse(dec.decode(e.value));
  });
  return {
    recv: rx.recv,
    received: rx.received,
    restarts: () => 0,
    async close() {
      w.stop();
      await rx.done.catch(() => {});
      await nc.close();
    },
  };
}

/**
 * kvedge's `cache.changes()` (yielded once the local store holds the
 * change). The receiver owns `cache` and closes it; `restarts` reports the
 * watcher restarts the caller counts through `onEvent`.
 */
export function changesReceiver(
  cache: Cache<number>,
  total: number,
  options: { restarts?: () => number } = {},
): Receiver {
  const it = cache.changes();
  const rx = receive(it, total, (c) => c.value);
  return {
    recv: rx.recv,
    received: rx.received,
    restarts: options.restarts ?? (() => 0),
    async close() {
      await it.return?.();
      await rx.done.catch(() => {});
      await cache.close();
    },
  };
}

/** Calls `put(i)` for ids 0..total-1 at `ratePerS`; returns the call times. */
export async function writePaced(
  put: (i: number) => Promise<unknown>,
  total: number,
  ratePerS: number,
): Promise<Float64Array> {
  const sent = new Float64Array(total);
  const acks: Promise<unknown>[] = [];
  const start = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * ratePerS) / 1000) + 1);
    while (i < due) {
      sent[i] = performance.now();
      acks.push(put(i));
      i++;
    }
    await delay(1);
  }
  await Promise.all(acks);
  return sent;
}

/** One repetition's figures, put → visible in ms over the measured writes. */
export interface RepResult {
  p50: number;
  p99: number;
  max: number;
  /** Measured writes never received. */
  lost: number;
  /** See {@link Receiver.restarts}. */
  restarts: number;
}

/** How one repetition writes and waits. */
export interface RepOptions {
  /** Writes before the measured ones (not counted). */
  warm: number;
  /** Measured writes. */
  n: number;
  /** Writes per second. */
  ratePerS: number;
  /** How long to wait for every write to arrive; what has not by then is lost. */
  timeoutMs: number;
}

/** Writes `warm + n` ids through `put` while `rx` receives them; closes `rx`. */
export async function measureRep(
  rx: Receiver,
  put: (i: number) => Promise<unknown>,
  options: RepOptions,
): Promise<RepResult> {
  const { warm, n } = options;
  const total = warm + n;
  try {
    const sent = await writePaced(put, total, options.ratePerS);
    // A write never seen counts as lost (reported), not as a failure of the run.
    await waitFor(() => rx.received() >= total, {
      timeoutMs: options.timeoutMs,
      intervalMs: 10,
      message: "all writes",
    }).catch(() => {});
    const lat: number[] = [];
    let lost = 0;
    for (let i = warm; i < total; i++) {
      const t = rx.recv[i]!;
      if (Number.isNaN(t)) lost++;
      else lat.push(t - sent[i]!);
    }
    return {
      p50: percentile(lat, 0.5),
      p99: percentile(lat, 0.99),
      max: Math.max(...lat),
      lost,
      restarts: rx.restarts(),
    };
  } finally {
    await rx.close();
  }
}

/** Empty lists, one per figure of {@link RepResult} named in `keys`. */
export function figures<K extends keyof RepResult>(...keys: K[]): Record<K, number[]> {
  return Object.fromEntries(keys.map((k) => [k, [] as number[]])) as Record<K, number[]>;
}

/** Appends each figure `fig` collects from `res`. */
export function record<K extends keyof RepResult>(fig: Record<K, number[]>, res: RepResult): void {
  for (const k of Object.keys(fig) as K[]) fig[k].push(res[k]);
}

/** The two variants, alternating which goes first per repetition. */
export function turn(rep: number): ("raw" | "kvedge")[] {
  return rep % 2 === 0 ? ["raw", "kvedge"] : ["kvedge", "raw"];
}

/** `<metric> p50` and `<metric> p99` of kvedge, each at most 1.2× the raw watcher's. */
export function visibleRows(
  metric: string,
  kvedge: { p50: number[]; p99: number[] },
  baselineName: string,
  baseline: { p50: number[]; p99: number[] },
): Row[] {
  return (["p50", "p99"] as const).map((p) =>
    ratioRow(`${metric} ${p}`, "ms", stat(kvedge[p]), baselineName, stat(baseline[p]), "le", 1.2)
  );
}

/**
 * Fast bucket filling for tests: pipelined publishes with a bounded window.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";

/** Puts `count` keys `<prefix><i>` with JSON values `value(i)`, `window` publishes in flight. */
export async function fill(
  nc: NatsConnection,
  bucket: string,
  count: number,
  value: (i: number) => unknown,
  options: { prefix?: string; window?: number } = {},
): Promise<number> {
  // A generous deadline: with `window` publishes queued on a busy machine the
  // last of them waits for all the others, and this fills, it does not time.
  const js = jetstream(nc, { timeout: 30_000 });
  const prefix = options.prefix ?? "k.";
  const window = options.window ?? 512;
  const inflight = new Set<Promise<unknown>>();
  let last = 0;
  for (let i = 0; i < count; i++) {
    const p = js.publish(`$KV.${bucket}.${prefix}${i}`, JSON.stringify(value(i))).then((a) => {
      if (a.seq > last) last = a.seq;
      inflight.delete(p);
    });
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return last;
}

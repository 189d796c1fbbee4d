/**
 * Small helpers the benchmark scenarios share: bucket names and filling,
 * raw connections, shuffling, waiting, and the process's memory (peak RSS;
 * heap + external after forced GCs).
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { waitFor } from "../../testing/wait_for.ts";

/** A fresh bucket name for the bench. */
export function benchBucket(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Fisher–Yates shuffle in place with a seeded xorshift, so runs are reproducible. */
export function shuffle<T>(items: T[], seed = 0x2545f491): T[] {
  let x = seed | 0;
  for (let i = items.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** Peak resident set size of this process (VmHWM), in bytes; falls back to current RSS. */
export function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    // Not Linux.
  }
  return Deno.memoryUsage().rss;
}

/**
 * V8 heap used + external memory (`Deno.memoryUsage()`) after four forced
 * GCs, in bytes: what the memory scenario takes the growth of, per entry.
 * Needs the process to run with `--v8-flags=--expose-gc`.
 */
export function usedAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 4; i++) gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

/**
 * Creates `bucket` and loads `count` keys fast: core publishes on the KV
 * subjects (the stream captures them) with a flush every 5 000, then waits
 * until the stream holds them all. Only for setting up a bench's data; the
 * seed scenario measures acknowledged puts.
 */
export async function fillBucket(
  nc: NatsConnection,
  bucket: string,
  count: number,
  key: (i: number) => string,
  value: (i: number) => Uint8Array,
  options: { replicas?: number; history?: number } = {},
): Promise<void> {
  await new Kvm(nc).create(bucket, {
    history: options.history ?? 1,
    replicas: options.replicas ?? 1,
  });
  const subject = `$KV.${bucket}.`;
  const jsm = await jetstreamManager(nc);
  const stored = async () => (await jsm.streams.info(`KV_${bucket}`)).state.messages;
  for (let i = 0; i < count; i++) {
    nc.publish(subject + key(i), value(i));
    if (i % 5_000 === 4_999) await nc.flush();
    // nats-server 2.10+ drops what exceeds a stream's ingest queue (100 000
    // messages by default): stay well below it.
    if (i % 50_000 === 49_999) {
      await waitFor(async () => (await stored()) >= i + 1 - 25_000, {
        timeoutMs: 60_000,
        intervalMs: 10,
        message: `ingest of ${bucket}`,
      });
    }
  }
  await nc.flush();
  await waitFor(async () => (await stored()) >= count, {
    timeoutMs: 60_000 + count / 10,
    intervalMs: 10,
    message: `${count} keys in bucket ${bucket}`,
  });
}

/** Connects a raw nats.js client (no reconnect games: the bench owns the servers). */
export function connectRaw(servers: string): Promise<NatsConnection> {
  return connect({ servers: servers.split(","), maxReconnectAttempts: 10 });
}

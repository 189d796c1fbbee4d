/**
 * Shared helpers of the chaos tests (`tests/chaos/`): bounded and long
 * variants, a writer that records what was acknowledged, RSS sampling, event
 * loop blocking, bucket snapshots, and a burst writer that runs as its own
 * process (`deno run -A tests/_chaos.ts burst <url> <bucket> <count> <keys>`),
 * so that an edge blocking its own event loop does not slow the writer down.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { BOOLEAN_WORDS, parseBoolean } from "../host/env_vars.ts";
import { errorChain } from "../src/describe.ts";

/** `KVEDGE_CHAOS_LONG=1` selects the longer variants (`deno task chaos`). */
export const LONG = (() => {
  let v: string | undefined;
  try {
    v = Deno.env.get("KVEDGE_CHAOS_LONG");
  } catch {
    return false;
  }
  if (v === undefined || v.trim() === "") return false;
  const long = parseBoolean(v);
  if (long === undefined) throw new TypeError(`KVEDGE_CHAOS_LONG must be ${BOOLEAN_WORDS}`);
  return long;
})();

/** `short` in CI, `long` with `KVEDGE_CHAOS_LONG=1`. */
export function scale<T>(short: T, long: T): T {
  return LONG ? long : short;
}

/** Prints one line of figures for the closing note, prefixed so it is easy to grep. */
export function figures(test: string, values: Record<string, unknown>): void {
  const parts = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  console.log(`CHAOS ${test}: ${parts.join(" ")}`);
}

/** Resolves with `p`, or rejects with a clear message if it has not settled after `ms`. */
export async function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keeps the event loop busy for `ms` (a stand-in for a CPU-bound request or a GC pause). */
export function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

/**
 * Samples this process's resident set size (and this isolate's V8 heap) until
 * stopped. Under `deno test --parallel` test modules share the process, so
 * RSS includes theirs; the heap is this module's own.
 */
export class RssSampler {
  readonly samples: number[] = [];
  readonly heap: number[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Starts sampling every `intervalMs`. */
  constructor(intervalMs = 250) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now. */
  sample(): number {
    const m = Deno.memoryUsage();
    this.samples.push(m.rss);
    this.heap.push(m.heapUsed);
    return m.rss;
  }

  /** Highest heap sample, in MiB. */
  get maxHeapMiB(): number {
    return mib(Math.max(...this.heap));
  }

  /** First heap sample, in MiB. */
  get firstHeapMiB(): number {
    return mib(this.heap[0] ?? 0);
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** Highest sample, in MiB. */
  get maxMiB(): number {
    return mib(Math.max(...this.samples));
  }

  /** First sample, in MiB. */
  get firstMiB(): number {
    return mib(this.samples[0] ?? 0);
  }

  /** Last sample, in MiB. */
  get lastMiB(): number {
    return mib(this.samples[this.samples.length - 1] ?? 0);
  }
}

/** Bytes to MiB with one decimal. */
export function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 102.4) / 10;
}

/**
 * Creates a replicated bucket on a freshly started cluster. A cluster whose
 * meta leader already sees every peer may still answer "no suitable peers for
 * placement" for a moment (seen on 2.15 right after start), so that answer is
 * retried until `timeoutMs`; returns once the stream answers publishes.
 */
export async function createReplicatedBucket(
  nc: NatsConnection,
  bucket: string,
  options: { replicas: number; history?: number; ttl?: number },
  timeoutMs = 60_000,
): Promise<KV> {
  const js = jetstream(nc, { timeout: 10_000 });
  const kvm = new Kvm(js);
  const deadline = Date.now() + timeoutMs;
  let kv: KV;
  for (;;) {
    try {
      kv = await kvm.create(bucket, options);
      break;
    } catch (err) {
      // A create lost to a busy meta layer is never answered (seen once on
      // 2.15.2 under a parallel run: 30 s without an answer); creating the
      // same bucket again is a no-op if the first one got through.
      const retry = /no suitable peers|timeout|no responders/i.test(causes(err));
      if (!retry || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  // nats-server 2.15 answers the create of a replicated stream before the
  // stream's subjects have interest on every node, so a put right after can
  // fail with "no responders". Probe with a publish the stream must refuse
  // (a last sequence it can never have): an answer means the stream listens,
  // and nothing is stored.
  for (;;) {
    try {
      await js.publish(`$KV.${bucket}._probe`, "", {
        expect: { lastSequence: Number.MAX_SAFE_INTEGER },
        timeout: 5_000,
      });
      throw new Error("the stream stored a probe it had to refuse");
    } catch (err) {
      if (/wrong last sequence/i.test(causes(err))) return kv;
      // nats.js reports "no responders" on a publish as "jetstream is not
      // enabled", with the no-responders error as its cause.
      if (!/no responders|timeout/i.test(causes(err)) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `err`'s message and those of its causes, for matching what a NATS error really was. */
function causes(err: unknown): string {
  const chain = errorChain(err);
  return chain.length === 0 ? String(err) : chain.map(String).join(" <- ");
}

/**
 * Writes unique values (`i`), each awaited, to unique keys (`<prefix><i>`) or
 * round-robin over `keys` keys, and records which writes were acknowledged. A
 * write that fails is not retried: it may or may not have been stored, which
 * the checks allow for.
 */
export class AckedWriter {
  /** Acknowledged writes: key → latest acknowledged value. */
  readonly acked = new Map<string, number>();
  /** Stream sequence of each key's latest acknowledged write. */
  readonly ackSeq = new Map<string, number>();
  /** Stream sequence and time (`performance.now()`) of every acknowledgement, in order. */
  readonly acks: { seq: number; at: number }[] = [];
  /** Writes that failed or timed out (outcome unknown). */
  failed = 0;
  /** Writes attempted. */
  attempted = 0;
  readonly #js: ReturnType<typeof jetstream>;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #keys: number;
  #stop = false;
  #running: Promise<void> | undefined;

  /** A writer on `nc` with the given per-write timeout. */
  constructor(
    nc: NatsConnection,
    bucket: string,
    options: { timeoutMs?: number; prefix?: string; keys?: number } = {},
  ) {
    this.#js = jetstream(nc, { timeout: options.timeoutMs ?? 2_000 });
    this.#bucket = bucket;
    this.#prefix = options.prefix ?? "w.";
    this.#keys = options.keys ?? 0;
  }

  /** Writes one value; true if acknowledged. */
  async writeOne(): Promise<boolean> {
    const i = this.attempted++;
    const key = `${this.#prefix}${this.#keys > 0 ? i % this.#keys : i}`;
    try {
      const ack = await this.#js.publish(`$KV.${this.#bucket}.${key}`, JSON.stringify(i));
      this.acked.set(key, i);
      this.ackSeq.set(key, ack.seq);
      this.acks.push({ seq: ack.seq, at: performance.now() });
      return true;
    } catch {
      this.failed++;
      // Back off briefly while the cluster elects or the server restarts.
      await new Promise((r) => setTimeout(r, 50));
      return false;
    }
  }

  /** Writes continuously until {@link stop}. */
  start(): void {
    this.#running = (async () => {
      while (!this.#stop) await this.writeOne();
    })();
  }

  /** Stops a {@link start}ed loop and waits for the write in flight. */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }
}

/**
 * The latest value of every key in the bucket (deleted keys absent), read
 * from the stream leader once every replica reports itself current.
 *
 * The checker must judge NATS and kvedge, not itself: right after a fault a
 * just-restarted replica may still be catching up, and 2.9.10 answers direct
 * gets from such a replica (stale direct gets were fixed in 2.9.17). So it
 * waits until the stream has a leader and no replica lags, then reads with
 * the leader-answered `STREAM.MSG.GET` (nats.js `kvm.open()` without
 * `allow_direct`) and lists keys with a consumer (which the leader runs).
 */
export async function snapshotBucket(
  nc: NatsConnection,
  bucket: string,
): Promise<Map<string, { revision: number; value: unknown }>> {
  // Right after a fault the cluster may still be electing (slowly, on a busy
  // two-core machine): the checker verifies data, not latency, so it retries
  // the whole listing until a generous deadline.
  const deadline = Date.now() + 120_000;
  await streamSettled(nc, `KV_${bucket}`, deadline);
  for (;;) {
    try {
      return await readBucket(nc, bucket);
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

/**
 * Waits until the stream has a leader and every replica is current with no
 * lag (a single server always is). Rejects at `deadline` (epoch ms).
 */
export async function streamSettled(
  nc: NatsConnection,
  stream: string,
  deadline: number,
): Promise<StreamInfo> {
  const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
  let last = "no answer";
  for (;;) {
    try {
      const info = await jsm.streams.info(stream);
      const c = info.cluster;
      const replicas = c?.replicas ?? [];
      if (!c || (c.leader && replicas.every((r) => r.current && !r.offline && !r.lag))) {
        return info;
      }
      last = `leader ${c.leader ?? "none"}, replicas ${
        replicas.map((r) => `${r.name}:${r.current ? "current" : "behind"}/lag ${r.lag ?? 0}`)
          .join(" ")
      }`;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`stream ${stream} never settled: ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Reads `keys` that a listing did not return one by one from the stream leader
 * and adds those found to `snap`; returns the keys the listing missed. A
 * listing is a consumer that ends when the server says nothing is pending, so
 * it judges the listing, not the bucket.
 */
export async function completeFromLeader(
  nc: NatsConnection,
  bucket: string,
  snap: Map<string, { revision: number; value: unknown }>,
  keys: Iterable<string>,
): Promise<string[]> {
  const kv = await new Kvm(jetstream(nc, { timeout: 30_000 })).open(bucket, {
    allow_direct: false,
  });
  const found: string[] = [];
  for (const key of keys) {
    if (snap.has(key)) continue;
    const e = await kv.get(key);
    if (e !== null && e.operation === "PUT") {
      snap.set(key, { revision: e.revision, value: e.json() });
      found.push(key);
    }
  }
  return found;
}

/**
 * For acknowledged writes the checker did not find, what the stream leader
 * holds at their acknowledged sequence and under their subject, so a report
 * says whether NATS lost the write or a reader missed it.
 */
export async function explainMissing(
  nc: NatsConnection,
  bucket: string,
  missing: { key: string; value: number; seq: number | undefined }[],
): Promise<string[]> {
  const jsm = await jetstreamManager(nc, { timeout: 10_000, checkAPI: false });
  const stream = `KV_${bucket}`;
  const info = await jsm.streams.info(stream).catch(() => undefined);
  const out: string[] = [];
  for (const m of missing.slice(0, 10)) {
    const subject = `$KV.${bucket}.${m.key}`;
    const bySeq = m.seq === undefined
      ? "no ack seq"
      : await jsm.streams.getMessage(stream, { seq: m.seq }).then(
        (sm) =>
          sm
            ? `seq ${m.seq} holds ${sm.subject}=${new TextDecoder().decode(sm.data)}`
            : "not found",
        (err) => `seq ${m.seq}: ${err?.message ?? err}`,
      );
    const bySubject = await jsm.streams.getMessage(stream, { last_by_subj: subject }).then(
      (sm) =>
        sm ? `last of subject is seq ${sm.seq}=${new TextDecoder().decode(sm.data)}` : "not found",
      (err) => `last of subject: ${err?.message ?? err}`,
    );
    out.push(`${m.key}=${m.value} (acked at seq ${m.seq}): ${bySeq}; ${bySubject}`);
  }
  if (info) {
    out.push(
      `stream first ${info.state.first_seq} last ${info.state.last_seq} msgs ${info.state.messages}` +
        ` leader ${info.cluster?.leader ?? "-"}`,
    );
  }
  return out;
}

/**
 * One listing and read of the bucket as it answers now (no wait for the
 * replicas): the checker `snapshotBucket()` used before it waited. Kept to
 * show, in the same run, whether reading too early misses writes.
 */
export async function readBucket(
  nc: NatsConnection,
  bucket: string,
): Promise<Map<string, { revision: number; value: unknown }>> {
  // Leader-answered gets: never a direct get that a lagging replica may answer.
  const kv = await new Kvm(jetstream(nc, { timeout: 30_000 })).open(bucket, {
    allow_direct: false,
  });
  const out = new Map<string, { revision: number; value: unknown }>();
  const keys = await Array.fromAsync(await kv.keys());
  for (const key of keys) {
    const e = await kv.get(key);
    if (e !== null && e.operation === "PUT") {
      out.set(key, { revision: e.revision, value: e.json() });
    }
  }
  return out;
}

/** Fails with the first few differences if `actual` (key → value) is not `expected`. */
export function assertSameContent(
  actual: Map<string, unknown>,
  expected: Map<string, unknown>,
  what: string,
): void {
  const diffs: string[] = [];
  for (const [k, v] of expected) {
    if (JSON.stringify(actual.get(k)) !== JSON.stringify(v)) {
      diffs.push(`${k}: ${JSON.stringify(actual.get(k))} != ${JSON.stringify(v)}`);
    }
  }
  for (const k of actual.keys()) if (!expected.has(k)) diffs.push(`${k}: unexpected`);
  assert.equal(diffs.length, 0, `${what}: ${diffs.length} differences, e.g. ${diffs.slice(0, 5)}`);
}

/** Runs the burst writer in its own process; resolves with its last acknowledged revision. */
export async function burstInChild(
  url: string,
  bucket: string,
  count: number,
  keys: number,
): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "burst",
      url,
      bucket,
      String(count),
      String(keys),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`burst writer failed: ${text}\n${new TextDecoder().decode(out.stderr)}`);
  }
  const m = /last=(\d+)/.exec(text);
  assert.ok(m, `burst writer printed no last revision: ${text}`);
  return Number(m[1]);
}

async function burstMain(url: string, bucket: string, count: number, keys: number): Promise<void> {
  const nc = await connect({ servers: url });
  const js = jetstream(nc, { timeout: 30_000 });
  const inflight = new Set<Promise<unknown>>();
  let last = 0;
  const pad = "x".repeat(40);
  for (let i = 0; i < count; i++) {
    const p = js.publish(`$KV.${bucket}.b.${i % keys}`, JSON.stringify({ i, pad })).then((a) => {
      if (a.seq > last) last = a.seq;
      inflight.delete(p);
    });
    inflight.add(p);
    if (inflight.size >= 1_000) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  console.log(`last=${last}`);
  await nc.close();
}

if (import.meta.main) {
  const [mode, url, bucket, count, keys] =
    parseArgs({ args: Deno.args, allowPositionals: true }).positionals;
  if (mode !== "burst" || !url || !bucket) {
    console.error("usage: deno run -A tests/_chaos.ts burst <url> <bucket> <count> <keys>");
    Deno.exit(2);
  }
  await burstMain(url, bucket, Number(count), Number(keys ?? 1000));
}

/**
 * What each node's replica of `stream` holds: its own state as its `/jsz`
 * reports it (every node reports its own replica, not the leader's), and
 * what it answers to direct gets at `seqs` over a connection to that node
 * alone (2.9 followers serve direct gets from their own replica; a node may
 * still hand a request on, so that part names the node asked). Shows
 * replicas that hold different messages at the same sequence.
 */
export async function replicaViews(
  nodes: { name: string; tcpUrl: string; monitorPort: number }[],
  stream: string,
  seqs: number[],
): Promise<string[]> {
  const out: string[] = [];
  for (const { name, tcpUrl, monitorPort } of nodes) {
    const state = await fetch(
      `http://127.0.0.1:${monitorPort}/jsz?accounts=true&streams=true`,
      { signal: AbortSignal.timeout(5_000) },
    ).then((r) => r.json()).then((j) => {
      const details = (j?.account_details ?? []).flatMap((a: { stream_detail?: unknown[] }) =>
        a.stream_detail ?? []
      ) as { name: string; state?: Record<string, number> }[];
      const st = details.find((d) => d.name === stream)?.state;
      return st
        ? `first ${st.first_seq} last ${st.last_seq} msgs ${st.messages} deleted ${
          st.num_deleted ?? 0
        }`
        : "no replica";
    }, (err) => `jsz: ${err?.message ?? err}`);
    let nc: NatsConnection | undefined;
    let held = "";
    try {
      nc = await connect({ servers: tcpUrl, reconnect: false, timeout: 5_000 });
      const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
      const at: string[] = [];
      for (const seq of seqs) {
        at.push(
          await jsm.direct.getMessage(stream, { seq }).then(
            (m) =>
              m ? `${seq}=${m.subject.split(".").slice(2).join(".")}:${m.string()}` : `${seq}=-`,
            (err) => `${seq}=error ${err?.message ?? err}`,
          ),
        );
      }
      held = at.join(" ");
    } catch (err) {
      held = errorChain(err).map(String).join(" <- ") || String(err);
    } finally {
      await nc?.close().catch(() => {});
    }
    out.push(`${name}: ${state}; direct gets ${held}`);
  }
  return out;
}

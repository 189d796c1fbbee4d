/**
 * Runs one schedule against the shared servers: creates the schedule's
 * bucket, opens the cache, performs every step (recording reads, loader
 * calls and writes), heals, then checks convergence (rule 5, `synced` ⇒
 * current, the regional link) and hands the rest to the checker. Leaves the
 * servers healed and the bucket deleted.
 *
 * @module
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { type KV, Kvm } from "@nats-io/kv";
import { z } from "zod";
import { type Cache, type CacheOptions, KvedgeError, openCache } from "../../mod.ts";
import { kvStreamName, kvSubject, TTL_HEADER } from "../../src/kv_layout.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
import { versionAtLeast } from "../../src/server_version.ts";
import { isStreamNotFound } from "../../src/nats_errors.ts";
import { uniqueBucket, waitFor } from "../_setup.ts";
import {
  type ChangeObservation,
  type Evidence,
  judge,
  type LoaderCall,
  type ReaderEnd,
  type ReadObservation,
  type ReadResult,
  type Shift,
  type StreamPurge,
  type Violation,
  type Written,
} from "./checker.ts";
import { latest, mirrorState, readHistory, type Revision, streamState } from "./history.ts";
import {
  BURST,
  type CacheShape,
  describeStep,
  KEYS,
  OUTAGES,
  READ_KEYS,
  type Schedule,
} from "./schedule.ts";
import type { Site, World } from "./world.ts";
import { shiftedRevisions, unexplained } from "./replica_defect.ts";

/** Bounds of the checker, ms: generous for a loaded two-core machine, stated in the docs. */
export const BOUNDS = {
  /** A read or a cache write must settle within this (missTimeoutMs 1 s, writeTimeoutMs 2 s). */
  opMs: 10_000,
  /**
   * openCache() must settle within this, online or not: its connect timeout
   * (5 s) and one JetStream control call (15 s, e.g. a consumer create while
   * an R3 stream elects a new leader) with room to spare.
   */
  openMs: 30_000,
  /** close() must settle within this (its own deadline, closeTimeoutMs, is 5 s). */
  closeMs: 15_000,
  /** After the last heal, every cache equals KV within this (rule 5). */
  convergeMs: 45_000,
  /** A cache saying `synced` (regional: and the hub reachable) equals KV within this. */
  syncedMs: 8_000,
  /** Once the values and the mirror are current, status says synced and the hub reachable within this. */
  statusMs: 5_000,
} as const;

/** The slow `changes()` reader's buffer: small, so that a pause overflows it. */
export const SLOW_BUFFER = 4;

/** `region.maxSilenceMs` of regional caches (the default). */
export const MAX_SILENCE_MS = 3_000;

/** Cache options every schedule uses (short timers, so faults show quickly). */
export const CACHE_TIMERS = {
  missTimeoutMs: 1_000,
  writeTimeoutMs: 2_000,
  loaderTimeoutMs: 1_000,
  heartbeatMs: 1_000,
  reconcileMs: 2_000,
} as const;

/** The outcome of one schedule. */
export interface RunResult {
  violations: Violation[];
  /**
   * Violations set aside as the server's known defect, with the evidence:
   * nats-server 2.9's R3 replicas seen out of step after a leader fault
   * (docs/nats-versions.md). Printed, counted, not failed.
   */
  excused?: { reason: string; violations: Violation[] };
  /** Steps done of each kind ("fault kill", "put", …). */
  mix: Map<string, number>;
  ms: number;
}

type Value = { w: string } | { bad: number };
const ValueSchema = z.object({ w: z.string() });

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Settles `p` within `ms`: its outcome, or "hang" (the promise is left to settle on its own). */
async function within<T>(
  p: Promise<T>,
  ms: number,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown } | "hang"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<"hang">((r) => timer = setTimeout(() => r("hang"), ms));
  try {
    return await Promise.race([
      p.then((value) => ({ ok: true as const, value }), (error) => ({ ok: false as const, error })),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function errorResult(err: unknown): ReadResult {
  const e = err as { name?: string; code?: string; message?: string };
  return {
    kind: "error",
    name: e?.constructor?.name ?? e?.name ?? "Error",
    ...(err instanceof KvedgeError ? { code: err.code } : {}),
    message: String(e?.message ?? err),
  };
}

/** Runs `schedule` on `world`. */
export async function runSchedule(world: World, schedule: Schedule): Promise<RunResult> {
  const t0 = Date.now();
  const mode = schedule.mode;
  const site =
    await (mode.regional
      ? world.regional()
      : mode.cluster
      ? world.cluster()
      : world.single(mode.websocket ? "websocket" : "tcp"));
  const run = new ScheduleRun(site, schedule);
  let excused: RunResult["excused"];
  try {
    await run.setUp();
    for (let i = 0; i < schedule.steps.length; i++) await run.step(i);
    await run.finish();
    excused = await run.serverDefect(); // before tearDown() deletes the stream
  } finally {
    await run.tearDown();
  }
  if (excused) return { violations: [], excused, mix: run.mix, ms: Date.now() - t0 };
  return { violations: run.violations, mix: run.mix, ms: Date.now() - t0 };
}

class ScheduleRun {
  readonly site: Site;
  readonly schedule: Schedule;
  readonly bucket = uniqueBucket("tt");
  readonly violations: Violation[] = [];
  readonly mix = new Map<string, number>();
  readonly reads: ReadObservation[] = [];
  readonly loaderCalls = new Map<string, LoaderCall>();
  readonly written = new Map<string, Written>();
  readonly badPuts: Evidence["badPuts"] = [];
  readonly blindPurges: Evidence["blindPurges"] = [];
  readonly histories: Revision[][] = [];
  readonly purges: StreamPurge[] = [];
  readonly origin = new Map<string, string | undefined>();
  kv!: KV;
  /** The caches under test: one, or two on the same bucket (pair mode). */
  readonly caches: (Cache<Value> | undefined)[];
  /** The instance number of each slot's cache (a reopen makes a new one). */
  readonly insts: number[];
  inst = -1;
  readonly shapes: CacheShape[];
  readonly snapshotOn: boolean[];
  epoch = 0;
  /** What the `changes()` readers got, in order per reader. */
  readonly changes: ChangeObservation[] = [];
  /** How each `changes()` reader ended. */
  readonly readerEnds: ReaderEnd[] = [];
  /** The readers' loops, awaited before judging. */
  readonly followers: Promise<void>[] = [];
  /** The slow reader (slot 0's, buffer {@linkcode SLOW_BUFFER}) is paused. */
  slowPaused = true; // until a schedule resumes it
  slowResumed = Promise.withResolvers<void>();
  /** The newest acknowledged write's revision, per bucket incarnation (a client's bookmark). */
  readonly acked: number[] = [];
  lastDisturbance = 0;
  counter = 0;
  dir = "";
  ttlSupported = false;

  constructor(site: Site, schedule: Schedule) {
    this.site = site;
    this.schedule = schedule;
    const first = schedule.mode.shape;
    // Pair mode: the second edge is the other kind, without a snapshot.
    const second: CacheShape = {
      mode: first.mode === "lazy" ? "replica" : "lazy",
      maxItems: 100,
      snapshot: false,
    };
    this.shapes = schedule.mode.pair ? [first, second] : [first];
    this.snapshotOn = this.shapes.map((s) => s.snapshot);
    this.caches = this.shapes.map(() => undefined);
    this.insts = this.shapes.map(() => -1);
    for (const k of READ_KEYS) this.origin.set(k, `L${k}-0`);
  }

  id(): string {
    return `s${this.schedule.seed}-${this.counter++}`;
  }

  count(what: string) {
    this.mix.set(what, (this.mix.get(what) ?? 0) + 1);
  }
  /**
   * On nats-server 2.9, an R3 stream leader killed or paused can leave its
   * replicas holding the same messages at different sequences (a known
   * server defect, tests/torture/replica_defect.ts): an edge whose consumer
   * sat on the replica out of step serves right values at revisions off the
   * leader's. When a cluster schedule failed, the nodes' own states of the
   * stream differ, and every violation is such a value that some node's own
   * replica holds at the revision seen, the violations are set aside with
   * that evidence (and counted); on 2.10+ never. Any other violation fails
   * the schedule, with the replicas' states added to its message.
   */
  async serverDefect(): Promise<RunResult["excused"]> {
    if (this.violations.length === 0) return undefined;
    const d = this.#diverged;
    // The diverged mirror: only what it explains is set aside, an edge that
    // converged to nothing else (never synced), and changes() that are the
    // mirror's own messages at the mirror's own sequences.
    if (d) {
      const explained = (v: Violation) =>
        this.#onDivergedMirror.has(v) ||
        (v.rule === "changes()" && v.change !== undefined &&
          sameMessage(d.mirror.get(v.change.revision), v.change));
      if (this.violations.every(explained)) {
        this.count("server: mirror diverged");
        return {
          reason: `nats-server ${this.site.version} regional mirror diverged: ${d.evidence}`,
          violations: this.violations,
        };
      }
    }
    const site = this.site;
    if (!site.replicaStates || !site.replicaHolds) return undefined;
    if (versionAtLeast(site.version, "2.10.0")) return undefined;
    const states = await site.replicaStates(this.bucket).catch(() => [] as string[]);
    const held = new Set(states.map((s) => s.replace(/^[^:]*: /, "")));
    if (states.length < 2 || held.size < 2) return undefined;
    const nodes = await site.replicaHolds(this.bucket, shiftedRevisions(this.violations))
      .catch(() => []);
    const { left, explainedBy } = unexplained(this.violations, nodes);
    if (left.length > 0) {
      for (const v of left) {
        v.message += ` [not the 2.9 replica defect, though the replicas are out of step: ${
          states.join(" | ")
        }]`;
      }
      return undefined;
    }
    this.count("server: replicas out of step");
    return {
      reason: `nats-server ${site.version} replicas out of step: ${states.join(" | ")}; ${
        explainedBy.join("; ")
      }`,
      violations: this.violations,
    };
  }

  /** The slot a step acts on: in pair mode, alternately each cache. */
  slotOf(step: number): number {
    return step % this.caches.length;
  }

  outage(): boolean {
    return [...this.site.active].some((f) => OUTAGES.has(f));
  }

  async createBucket(): Promise<void> {
    // A stream on a cluster (the R3 site, the regional hub) takes longer to
    // place, more so on a loaded machine or after a node restarted: retried.
    const clustered = this.site.replicas > 1 || this.site.hubDomain !== undefined;
    const timeout = clustered ? 10_000 : 2_000;
    const kvm = new Kvm(jetstream(this.site.writer, { timeout }));
    this.ttlSupported = versionAtLeast(this.site.version, "2.11.0");
    const config = {
      history: 64,
      replicas: this.site.replicas,
      ...(this.ttlSupported ? { markerTTL: 1_000 } : {}),
    };
    this.kv = clustered
      ? await waitFor(() => kvm.create(this.bucket, config).catch(() => undefined), {
        timeoutMs: 60_000,
        message: `R${this.site.replicas} bucket ${this.bucket} created`,
      })
      : await kvm.create(this.bucket, config);
    if (this.site.hubDomain) {
      await waitFor(
        () =>
          createRegionalMirror(this.site.reader, this.bucket, { hubDomain: this.site.hubDomain! }),
        { timeoutMs: 30_000, message: `mirror of ${this.bucket} created` },
      );
      const jsm = await jetstreamManager(this.site.reader, { checkAPI: false });
      await waitFor(async () => {
        const m = (await jsm.streams.info(kvStreamName(this.bucket))).mirror;
        return m !== undefined && m.active >= 0 && m.active < 3e9;
      }, { timeoutMs: 30_000, message: `mirror of ${this.bucket} hears the hub` });
    }
  }

  async setUp(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: "kvedge_torture_" });
    await this.createBucket();
    for (let slot = 0; slot < this.caches.length; slot++) await this.open(slot);
  }

  options(slot: number): CacheOptions<Value> {
    const m = this.schedule.mode;
    const shape = this.shapes[slot]!;
    return {
      servers: this.site.cacheUrl,
      connectOptions: {
        ...this.site.cacheConnect,
        timeout: 5_000,
        reconnectTimeWait: 100,
        reconnectJitter: 50,
        maxReconnectAttempts: -1,
      },
      bucket: this.bucket,
      mode: shape.mode,
      local: { maxItems: shape.maxItems },
      ...CACHE_TIMERS,
      ...(this.snapshotOn[slot] && !m.regional
        ? { snapshot: { path: `${this.dir}/cache${slot}.snap`, intervalMs: 0 } }
        : {}),
      ...(m.schema ? { schema: ValueSchema } : {}),
      ...(m.loader ? { loader: (key: string) => this.load(key, slot) } : {}),
      ...(this.site.hubDomain
        ? { region: { hubDomain: this.site.hubDomain, checkMs: 200, maxSilenceMs: MAX_SILENCE_MS } }
        : {}),
    } as CacheOptions<Value>;
  }

  load(key: string, slot: number): Promise<Value | undefined> {
    const id = this.origin.get(key);
    if (id === undefined) return Promise.resolve(undefined);
    const value = `${id}#${this.counter++}`; // one id per answer, to know when it was given
    this.loaderCalls.set(value, {
      key,
      id: value,
      at: Date.now(),
      offline: this.outage() || this.caches[slot]?.status().connected === false,
    });
    return Promise.resolve({ w: value });
  }

  async open(slot: number): Promise<void> {
    const inst = ++this.inst;
    this.insts[slot] = inst;
    const r = await within(openCache<Value>(this.options(slot)), BOUNDS.openMs);
    if (r === "hang") {
      this.violations.push({
        rule: "rule 7",
        message: `openCache() #${inst} did not settle within ${BOUNDS.openMs} ms`,
      });
      this.caches[slot] = undefined;
      return;
    }
    if (!r.ok) {
      // Refusing to open while NATS is unreachable (without a usable snapshot) is allowed.
      if (!this.outage() && !(r.error instanceof KvedgeError)) {
        this.violations.push({ rule: "open", message: `openCache() #${inst} failed: ${r.error}` });
      }
      this.caches[slot] = undefined;
      return;
    }
    this.caches[slot] = r.value;
    // Two readers of changes() from the start: one reading all the time, one
    // that a schedule pauses, with a small buffer (slot 0 only).
    const shape = this.shapes[slot]!;
    const mayRepeat = shape.mode === "replica" && shape.maxItems < READ_KEYS.length;
    this.follow(inst, r.value, "fast", mayRepeat);
    if (slot === 0) this.follow(inst, r.value, "slow", mayRepeat);
    // Opened online: let it sync first, so that what a schedule does next
    // (a fault, a close that writes the snapshot) meets a cache that is
    // ready, whatever the machine's load.
    if (!this.outage()) await within(r.value.ready({ timeoutMs: BOUNDS.openMs }), BOUNDS.openMs);
  }

  /** Reads `c.changes()` until it ends, recording every change (the slow one: unless paused). */
  follow(inst: number, c: Cache<Value>, reader: "fast" | "slow", mayRepeat: boolean): void {
    const it = c.changes(reader === "slow" ? { bufferSize: SLOW_BUFFER } : {});
    this.followers.push((async () => {
      let n = 0;
      try {
        for (;;) {
          while (reader === "slow" && this.slowPaused) await this.slowResumed.promise;
          const r = await it.next();
          if (r.done) break;
          const ch = r.value;
          const st = c.status();
          this.changes.push({
            inst,
            reader,
            n: n++,
            key: ch.key,
            operation: ch.operation,
            revision: ch.revision,
            ...(ch.value && "w" in ch.value ? { id: ch.value.w } : {}),
            epoch: this.epoch,
            mayRepeat,
            resyncs: st.resyncs,
            lastResync: st.lastResyncReason,
          });
        }
        this.readerEnds.push({ inst, reader, count: n });
        this.count(`changes() ${reader}: ended at close`);
      } catch (err) {
        this.readerEnds.push({ inst, reader, count: n, error: errorName(err) });
        this.count(`changes() ${reader}: ${errorName(err)}`);
      }
    })());
  }

  async closeCache(slot: number): Promise<void> {
    const c = this.caches[slot];
    this.caches[slot] = undefined;
    if (!c) return;
    const r = await within(c.close(), BOUNDS.closeMs);
    if (r === "hang") {
      this.violations.push({
        rule: "close",
        message: `close() did not settle within ${BOUNDS.closeMs} ms`,
      });
    }
  }

  statusNow(slot: number) {
    const s = this.caches[slot]?.status();
    return {
      state: s?.state ?? "closed",
      connected: s?.connected ?? false,
      ...(s?.region ? { hubReachable: s.region.hubReachable } : {}),
    };
  }

  resumeSlow(): void {
    this.slowPaused = false;
    this.slowResumed.resolve();
    this.slowResumed = Promise.withResolvers<void>();
  }

  /** Records an acknowledged write at `revision` of incarnation `epoch`. */
  ack(epoch: number, revision: number): void {
    if (revision > (this.acked[epoch] ?? 0)) this.acked[epoch] = revision;
  }

  async read(
    step: number,
    key: string,
    how: ReadObservation["how"],
    slot: number,
    allowStale = false,
  ): Promise<void> {
    const c = this.caches[slot];
    if (!c) return;
    const inst = this.insts[slot]!;
    const start = Date.now();
    const before = this.statusNow(slot);
    const outageStart = this.outage();
    const epoch = this.epoch;
    // A client's bookmark: the newest write acknowledged to anyone so far.
    const bookmark = how === "getAt" ? this.acked[epoch] ?? 0 : undefined;
    let result: ReadResult;
    if (how === "peek") {
      const v = c.peek(key);
      result = v === undefined ? { kind: "absent" } : { kind: "value", ...idOf(v) };
    } else {
      const r = await within<unknown>(
        how === "get"
          ? c.get(key)
          : how === "getEntry"
          ? c.getEntry(key)
          : c.getEntry(key, { atLeast: bookmark, allowStale }),
        BOUNDS.opMs,
      );
      if (r === "hang") result = { kind: "hang" };
      else if (!r.ok) result = errorResult(r.error);
      else if (r.value === undefined) result = { kind: "absent" };
      else if (how === "get") result = { kind: "value", ...idOf(r.value as Value) };
      else {
        const e = r.value as {
          value: Value;
          revision: number;
          source: string;
          stale: boolean;
          belowBookmark?: true;
        };
        result = {
          kind: "value",
          ...idOf(e.value),
          revision: e.revision,
          source: e.source,
          stale: e.stale,
          ...(e.belowBookmark ? { belowBookmark: true } : {}),
        };
      }
    }
    this.reads.push({
      inst,
      key,
      how,
      step,
      start,
      end: Date.now(),
      epoch,
      before,
      after: this.statusNow(slot),
      outage: outageStart || this.outage(),
      lastDisturbance: this.lastDisturbance,
      ...(bookmark === undefined ? {} : { bookmark, allowStale, epochAfter: this.epoch }),
      result,
    });
    // How often rule 7 is walked: a read that found the cache disconnected before and after.
    const after = this.reads.at(-1)!.after;
    if (!before.connected && !after.connected && how !== "peek") {
      this.count(`read while disconnected: ${result.kind === "value" ? "value" : result.kind}`);
    }
  }

  async rawWrite(op: string, drawn: string): Promise<void> {
    const id = this.id();
    // A per-key TTL goes to a key only TTL writes touch (k6, k7): when one
    // expires on a key with older revisions, the server serves the older one
    // again, which is not what this checker judges.
    const key = op === "putTtl" && this.ttlSupported
      ? (Number(drawn.slice(1)) % 2 === 0 ? "k6" : "k7")
      : drawn;
    const data = JSON.stringify(op === "putBad" ? { bad: 1 } : { w: id });
    const ttl = op === "putTtl" && this.ttlSupported;
    if (op !== "delete" && op !== "purge" && op !== "putBad") {
      this.written.set(id, { key, epoch: this.epoch, ttl });
    }
    const bad = op === "putBad"
      ? { key, epoch: this.epoch } as Evidence["badPuts"][number]
      : undefined;
    if (bad) this.badPuts.push(bad);
    const epoch = this.epoch;
    const attempt = async (): Promise<number> => {
      switch (op) {
        case "create":
          return await this.kv.create(key, data);
        case "update": {
          const cur = await this.kv.get(key);
          return await this.kv.update(key, data, cur?.revision ?? 0);
        }
        case "delete":
          await this.kv.delete(key);
          return 0;
        case "purge":
          await this.kv.purge(key);
          return 0;
        case "putTtl":
          if (ttl) {
            const js = jetstream(this.site.writer, { timeout: 2_000 });
            const h = headers();
            h.set(TTL_HEADER, "1s");
            return (await js.publish(kvSubject(this.bucket, key), data, { headers: h })).seq;
          }
          return await this.kv.put(key, data);
        default:
          return await this.kv.put(key, data);
      }
    };
    if (op === "purge") await this.beforeKeyPurge(key);
    const r = await within(attempt(), 5_000);
    if (r !== "hang" && r.ok && r.value > 0) {
      const w = this.written.get(id);
      if (w && w.epoch === epoch) w.revision = r.value;
      if (bad) bad.revision = r.value;
      this.ack(epoch, r.value);
    }
  }

  async cacheWrite(step: number, op: "set" | "del", key: string, slot: number): Promise<void> {
    const c = this.caches[slot];
    if (!c) return;
    const id = this.id();
    const epoch = this.epoch;
    if (op === "set") this.written.set(id, { key, epoch, ttl: false });
    const r = await within(op === "set" ? c.set(key, { w: id }) : c.delete(key), BOUNDS.opMs);
    if (r === "hang") {
      this.violations.push({
        rule: "rule 7",
        message: `step ${step}: ${op}(${key}) did not settle within ${BOUNDS.opMs} ms`,
        step,
      });
    } else if (!r.ok) {
      const e = errorResult(r.error);
      if (
        e.kind === "error" && !["UnavailableError", "ConflictError", "ClosedError"].includes(e.name)
      ) {
        this.violations.push({
          rule: "typed errors",
          message: `step ${step}: ${op}(${key}) failed with ${e.name}: ${e.message}`,
          step,
        });
      }
    } else if (epoch === this.epoch) {
      if (op === "set") {
        const w = this.written.get(id);
        if (w) w.revision = r.value;
      }
      this.ack(epoch, r.value);
    }
  }

  /**
   * A key's purge rolls every older message of the key (its deletes too) out
   * of the stream: read the history first, or the checker would take the
   * purge for the key's first removal after a value it served. With no
   * server to ask (killed or paused) the purge is recorded as blind.
   */
  async beforeKeyPurge(key: string): Promise<void> {
    const down = (["kill", "pause", "leader"] as const).some((f) => this.site.active.has(f));
    if (!down && await this.captureHistory()) return;
    this.blindPurges.push({ key, epoch: this.epoch });
  }

  /** Reads this incarnation's history before a purge or recreate destroys it. */
  async captureHistory(): Promise<boolean> {
    try {
      // Merged with what earlier reads saw: a key's purge rolls up its older
      // messages and a stream purge removes all, but both happened.
      const seen = new Map((this.histories[this.epoch] ?? []).map((x) => [x.revision, x]));
      for (const x of await readHistory(this.site.writer, this.bucket)) seen.set(x.revision, x);
      this.histories[this.epoch] = [...seen.values()].sort((a, b) => a.revision - b.revision);
      return true;
    } catch {
      return false;
    }
  }

  async step(i: number): Promise<void> {
    const s = this.schedule.steps[i]!;
    switch (s.op) {
      case "put":
      case "create":
      case "update":
      case "delete":
      case "purge":
      case "putTtl":
      case "putBad":
        this.count(s.op);
        return await this.rawWrite(s.op, s.key);
      case "set":
      case "del":
        this.count(`cache ${s.op}`);
        return await this.cacheWrite(i, s.op, s.key, this.slotOf(i));
      case "get":
      case "getEntry":
      case "peek":
        this.count(s.op);
        // Every cache reads, at once.
        await Promise.all(this.caches.map((_, slot) => this.read(i, s.key, s.op, slot)));
        return;
      case "getAt": {
        this.count(`getAt${s.write ? " after put" : ""}${s.allowStale ? " allowStale" : ""}`);
        const slot = this.slotOf(i);
        // k6 and k7 are written only with per-key TTLs (see rawWrite): not here.
        const write = s.write && (KEYS as readonly string[]).includes(s.key);
        if (write && this.caches.length > 1) {
          // Read your writes across edges: written through one, read through the other.
          await this.cacheWrite(i, "set", s.key, 1 - slot);
        } else if (write) await this.rawWrite("put", s.key);
        return await this.read(i, s.key, "getAt", slot, s.allowStale);
      }
      case "burst":
        this.count("burst");
        await Promise.all(
          Array.from({ length: BURST }, (_, n) => this.rawWrite("put", KEYS[n % KEYS.length]!)),
        );
        return;
      case "pauseReader":
        this.count("pause the slow reader");
        this.slowPaused = true;
        return;
      case "resumeReader":
        this.count("resume the slow reader");
        this.resumeSlow();
        return;
      case "readAll":
        this.count("readAll");
        await Promise.all(
          this.caches.flatMap((_, slot) => READ_KEYS.map((k) => this.read(i, k, "getEntry", slot))),
        );
        return;
      case "reopen": {
        this.count(`reopen${s.snapshot ? " snapshot" : ""}${s.shape ? " reshaped" : ""}`);
        const slot = this.slotOf(i);
        await this.closeCache(slot);
        if (s.shape) this.shapes[slot] = s.shape;
        this.snapshotOn[slot] = s.snapshot && !this.schedule.mode.regional;
        await this.open(slot);
        return;
      }
      case "loader":
        this.count("loader answer");
        this.origin.set(s.key, s.present ? `L${s.key}-${this.counter++}` : undefined);
        return;
      case "wait":
        this.count("wait");
        await sleep(s.ms);
        return;
      case "heal":
        if (this.site.active.size > 0) this.count("heal");
        await this.site.heal();
        this.lastDisturbance = Date.now();
        return;
      case "fault":
        return await this.fault(s.fault);
    }
  }

  async fault(
    kind: Schedule["steps"][number] & { op: "fault" } extends { fault: infer F } ? F : never,
  ) {
    if (kind === "purge" || kind === "recreate") {
      if (this.site.active.has("kill") || this.site.active.has("pause")) return; // no server to ask
      if (!(await this.captureHistory())) return;
      const state = await streamState(this.site.writer, this.bucket);
      if (!state) return;
      if (kind === "purge") {
        const jsm = await jetstreamManager(this.site.writer, { timeout: 5_000, checkAPI: false });
        await jsm.streams.purge(kvStreamName(this.bucket));
        this.purges.push({ epoch: this.epoch, lastSeq: state.lastSeq, at: Date.now() });
      } else {
        await this.destroyBucket();
        this.epoch++;
        await this.createBucket();
      }
      this.count(`fault ${kind}`);
      this.lastDisturbance = Date.now();
      return;
    }
    if (this.site.active.has(kind)) return;
    await this.site.fault(kind, this.bucket);
    if (this.site.active.has(kind)) this.count(`fault ${kind}`);
    this.lastDisturbance = Date.now();
  }

  /**
   * Deletes the bucket's stream. Right after an R3 leader kill the cluster
   * may still be electing and a delete can time out (seed 11973692, 2.15.2:
   * the harness failed, not the cache): it is asked again, and a stream
   * already gone on a later attempt counts as deleted.
   */
  async destroyBucket(): Promise<void> {
    const jsm = await jetstreamManager(this.site.writer, { timeout: 5_000, checkAPI: false });
    const stream = kvStreamName(this.bucket);
    for (let attempt = 1;; attempt++) {
      try {
        await jsm.streams.delete(stream);
        return;
      } catch (err) {
        if (attempt > 1 && isStreamNotFound(err)) return;
        if (attempt >= 6 || (err as Error).name !== "TimeoutError") throw err;
      }
    }
  }

  /** Heals, checks convergence and the status, then judges every read. */
  async finish(): Promise<void> {
    await this.site.heal();
    this.lastDisturbance = Date.now();
    for (let slot = 0; slot < this.caches.length; slot++) {
      if (!this.caches[slot]) {
        const opened = await waitFor(async () => {
          await this.open(slot);
          return this.caches[slot] !== undefined;
        }, { timeoutMs: BOUNDS.convergeMs, message: `cache ${slot} opens after the last heal` })
          .then(() => true, (err: Error) => {
            // Reported with the schedule's seed like any violation, not thrown
            // out of the batch (one did, on a loaded machine, ending the run).
            this.violations.push({ rule: "open", message: err.message });
            return false;
          });
        if (!opened) return;
      }
    }
    // Every cache converges (each judged on its own; the second one's clock
    // starts after the first converged, which only makes it more lenient).
    for (const c of this.caches) await this.converge(c!);
    await this.captureHistory();
    // Closed before judging: the readers' iterators end, the slow one reads what it holds.
    for (let slot = 0; slot < this.caches.length; slot++) await this.closeCache(slot);
    this.resumeSlow();
    if (await within(Promise.all(this.followers), BOUNDS.closeMs) === "hang") {
      this.violations.push({
        rule: "changes()",
        message: `a changes() reader did not end within ${BOUNDS.closeMs} ms of close()`,
      });
    }
    this.violations.push(
      ...judge(
        {
          histories: this.histories,
          purges: this.purges,
          written: this.written,
          badPuts: this.badPuts,
          blindPurges: this.blindPurges,
          reads: this.reads,
          changes: this.changes,
          readerEnds: this.readerEnds,
          loaderCalls: this.loaderCalls,
          schema: this.schedule.mode.schema,
        } satisfies Evidence,
      ),
    );
  }

  /**
   * Rule 5 and a truthful status: after the last heal, with writes stopped,
   * every key equals KV's last message for it within `convergeMs`, and within
   * `syncedMs` of the cache saying `synced`; a loader value given while NATS
   * was unreachable is never among them. Regional: once the values and the
   * mirror are current, a write is not refused and the status says the hub
   * is reachable within `statusMs`.
   */
  async converge(c: Cache<Value>): Promise<void> {
    // The stream's answer; after a leader change it may briefly be "temporarily unavailable".
    const kvNow = () =>
      waitFor(() => latest(this.site.writer, this.bucket, READ_KEYS).catch(() => undefined), {
        timeoutMs: BOUNDS.convergeMs,
        message: `the stream of ${this.bucket} answers`,
      });
    let want = await kvNow();
    const start = Date.now();
    let syncedSince: number | undefined;
    let diff = "";
    let shifted: Shift[] | undefined;
    let offlineLoader = "";
    for (;;) {
      const st = c.status();
      const synced = st.state === "synced" && st.region?.hubReachable !== false;
      if (synced) syncedSince ??= Date.now();
      else syncedSince = undefined;
      // Re-read each time: a per-key TTL may expire a key meanwhile.
      want = await kvNow();
      const d = await this.differences(c, want);
      diff = d.diff;
      shifted = d.shifted;
      offlineLoader = d.offlineLoader;
      if (d.diff === "" && synced) break;
      if (d.valuesCurrent && this.site.hubDomain && !this.#probed) {
        await this.probeRegion(c);
      }
      if (syncedSince !== undefined && Date.now() - syncedSince > BOUNDS.syncedMs) {
        this.violations.push({
          rule: offlineLoader ? "loader after NATS" : "synced ⇒ current",
          message: `status() has said synced for ${BOUNDS.syncedMs} ms but the cache serves ${
            offlineLoader || diff
          }${await this.mirrorSays()}`,
          ...(shifted && !offlineLoader ? { shifted } : {}),
        });
        return;
      }
      if (Date.now() - start > BOUNDS.convergeMs) {
        if (!offlineLoader && (st.region?.mirrorMissing ?? 0) > 0 && await this.mirrorHole()) {
          // The server's mirror lost revisions the hub holds (nats-server
          // 2.9.10 after a WAN cut, docs/nats-versions.md): no edge reading it
          // can converge, and this one says so (never synced, mirrorMissing).
          // Not the edge's violation; counted so that a run shows it.
          this.count("server: mirror lacks revisions");
          return;
        }
        const v: Violation = {
          rule: offlineLoader ? "loader after NATS" : "rule 5",
          message: `not converged ${BOUNDS.convergeMs} ms after the last heal: ${
            offlineLoader || diff || `state ${st.state}`
          } (status ${
            JSON.stringify({ state: st.state, connected: st.connected, region: st.region })
          })`,
          ...(shifted && !offlineLoader ? { shifted } : {}),
        };
        this.violations.push(v);
        if (!offlineLoader && st.state !== "synced" && await this.mirrorDiverged(c)) {
          this.#onDivergedMirror.add(v);
        }
        return;
      }
      await sleep(100);
    }
    if (this.site.hubDomain && !this.#probed) await this.probeRegion(c);
  }

  #probed = false;

  /** Rule 5 violations of an edge that serves what its diverged mirror holds. */
  readonly #onDivergedMirror = new Set<Violation>();
  /** The leaf's mirror, message by sequence, once found diverged from the hub. */
  #diverged: { mirror: Map<number, Revision>; evidence: string } | undefined;

  /**
   * Regional, before 2.10: the leaf's mirror stores, at a sequence the hub
   * holds, a different message than the hub's (nats-server 2.9.10 after a
   * WAN cut, docs/nats-versions.md: the hub's newer message one sequence
   * down, the mirror then stuck with lag above 0), and the cache `c` serves
   * what the mirror holds for every key (stale or not, nothing else). Records
   * the mirror's messages for {@link serverDefect}.
   */
  async mirrorDiverged(c: Cache<Value>): Promise<boolean> {
    if (!this.site.hubDomain || versionAtLeast(this.site.version, "2.10.0")) return false;
    const read = await Promise.all([
      readHistory(this.site.writer, this.bucket),
      readHistory(this.site.reader, this.bucket),
      mirrorState(this.site.reader, this.bucket),
    ]).catch(() => undefined);
    if (!read) return false;
    const [hub, mirror, state] = read;
    const hubAt = new Map(hub.map((r) => [r.revision, r]));
    // A lagging mirror may still hold what the hub removed since: only a
    // different message where the hub holds one is a divergence.
    const wrong = mirror.flatMap((m) => {
      const h = hubAt.get(m.revision);
      return h && !sameMessage(h, m) ? [[m, h] as const] : [];
    });
    if (wrong.length === 0) return false;
    const held = await latest(this.site.reader, this.bucket, READ_KEYS).catch(() => undefined);
    if (!held) return false;
    const d = await this.differences(c, held);
    if (!d.valuesCurrent || d.offlineLoader) return false;
    const last = (rs: Revision[]) => rs.at(-1)?.revision ?? 0;
    const shown = wrong.slice(0, 3).map(([m, h]) =>
      `${m.revision}: ${m.operation} ${m.key} ${
        m.id ?? ""
      } where the hub has ${h.operation} ${h.key} ${h.id ?? ""}`
    );
    this.#diverged = {
      mirror: new Map(mirror.map((r) => [r.revision, r])),
      evidence: `the mirror stores other messages than the hub at ${wrong.length} sequence(s) (${
        shown.join("; ")
      }); mirror ${mirror.length} messages up to ${last(mirror)}, lag ${
        state?.lag ?? "?"
      }, heard the hub ${state?.activeMs ?? "?"} ms ago; hub ${hub.length} up to ${
        last(hub)
      }; the edge serves what the mirror holds`,
    };
    return true;
  }

  /**
   * Regional: once the values equal the hub's and the mirror, read here
   * independently of the cache, has copied everything and heard the hub within
   * `maxSilenceMs`, a write is not refused on the belief that the hub is
   * unreachable, and the status says the hub is reachable within `statusMs`.
   */
  async probeRegion(c: Cache<Value>): Promise<void> {
    if (this.#probed) return;
    const hub = await streamState(this.site.writer, this.bucket);
    const mirror = await mirrorState(this.site.reader, this.bucket);
    if (!hub || !mirror || mirror.lastSeq < hub.lastSeq) return; // not copied yet
    if (mirror.activeMs < 0 || mirror.activeMs > MAX_SILENCE_MS || mirror.lag > 0) return;
    if (await this.mirrorHole()) {
      // The server's mirror lacks revisions the hub holds (2.9.10 after a WAN
      // cut): the edge rightly does not vouch for it (mirrorMissing > 0).
      this.#probed = true;
      this.count("server: mirror lacks revisions");
      return;
    }
    this.#probed = true;
    const seen =
      `the mirror: last revision ${mirror.lastSeq} (hub ${hub.lastSeq}), heard the hub ${mirror.activeMs} ms ago`;
    const id = this.id();
    this.written.set(id, { key: "k0", epoch: this.epoch, ttl: false });
    const status = JSON.stringify(c.status().region);
    const r = await within(c.set("k0", { w: id }), BOUNDS.opMs);
    // A write that was tried may fail while the leaf's routes to the hub come
    // back ("no responders"); one refused on the link's last check is the bug.
    if (r !== "hang" && !r.ok && /unreachable from this region/.test(String(r.error))) {
      this.violations.push({
        rule: "status truthful",
        message:
          `a write was refused on a stale belief: ${r.error}; ${seen}; cache's region status ${status}`,
      });
    }
    if (r === "hang") {
      this.violations.push({
        rule: "rule 7",
        message: `a write after the heal did not settle within ${BOUNDS.opMs} ms`,
      });
    }
    const ok = await waitFor(() => {
      const s = c.status();
      return s.state === "synced" && s.region?.hubReachable === true;
    }, { timeoutMs: BOUNDS.statusMs, intervalMs: 50 }).then(() => true, () => false);
    if (!ok) {
      const s = c.status();
      this.violations.push({
        rule: "status truthful",
        message: `${BOUNDS.statusMs} ms after ${seen}, the cache's status says ${s.state}, region ${
          JSON.stringify(s.region)
        }`,
      });
    }
  }

  /** Regional: the mirror holds fewer messages than the hub at (at least) its last sequence. */
  async mirrorHole(): Promise<boolean> {
    if (!this.site.hubDomain) return false;
    const [hub, mirror] = await Promise.all([
      streamState(this.site.writer, this.bucket),
      streamState(this.site.reader, this.bucket),
    ]);
    return hub !== undefined && mirror !== undefined && mirror.lastSeq >= hub.lastSeq &&
      mirror.messages < hub.messages;
  }

  /** Regional: what the leaf's mirror holds for each key, to tell a lagging mirror from the edge. */
  async mirrorSays(): Promise<string> {
    if (!this.site.hubDomain) return "";
    const m = await latest(this.site.reader, this.bucket, READ_KEYS).catch(() => undefined);
    if (!m) return "; the mirror does not answer";
    const held = [...m].map(([k, r]) =>
      `${k} ${r === undefined ? "-" : `${r.operation}@${r.revision}`}`
    );
    // A mirror that lacks a revision the hub holds (first sequence past the
    // hub's, fewer messages at the same last sequence) is the server's
    // defect, not the edge's: say so with the numbers (docs/nats-versions.md).
    const [hub, mirror] = await Promise.all([
      streamState(this.site.writer, this.bucket),
      streamState(this.site.reader, this.bucket),
    ]);
    let counts = "";
    if (hub && mirror) {
      const hole = await this.mirrorHole();
      counts = ` (mirror: sequences ${mirror.firstSeq}..${mirror.lastSeq}, ${mirror.messages} ` +
        `messages; hub: ${hub.firstSeq}..${hub.lastSeq}, ${hub.messages} messages${
          hole ? "; the mirror lacks revisions the hub holds" : ""
        })`;
    }
    return `; the mirror holds ${held.join(", ")}${counts}`;
  }

  async differences(c: Cache<Value>, want: Map<string, Revision | undefined>) {
    const parts: string[] = [];
    /** The parts that are KV's value at another revision (a replica out of step, see Shift). */
    const shifts: Shift[] = [];
    let offlineLoader = "";
    let valuesCurrent = true;
    for (const k of READ_KEYS) {
      const w = want.get(k);
      const r = await within(c.getEntry(k), BOUNDS.opMs);
      if (r === "hang") {
        parts.push(`${k}: no answer`);
        valuesCurrent = false;
        continue;
      }
      if (!r.ok) {
        const name = (r.error as Error)?.constructor?.name;
        if (!(w?.operation === "PUT" && w.id === undefined && name === "DecodeError")) {
          parts.push(`${k}: ${name} ${(r.error as Error)?.message}`);
          valuesCurrent = false;
        }
        continue;
      }
      const e = r.value;
      const got = e === undefined ? "absent" : `${e.revision} ${"w" in e.value ? e.value.w : "?"}`;
      const expect = w === undefined || w.operation !== "PUT" ? "absent" : `${w.revision} ${w.id}`;
      if (e && e.revision === 0 && "w" in e.value) {
        const call = this.loaderCalls.get(e.value.w);
        if (call?.offline) {
          offlineLoader =
            `${k}: the loader value ${e.value.w} (given while NATS was unreachable) as ${e.source}, stale ${e.stale}; KV: ${expect}`;
          parts.push(offlineLoader);
          valuesCurrent = false;
          continue;
        }
        if (w === undefined) continue; // KV holds nothing: the loader (asked online) answers
      }
      if (got !== expect) {
        parts.push(`${k}: cache ${got}, KV ${expect}`);
        valuesCurrent = false;
        const id = e && "w" in e.value ? e.value.w : undefined;
        if (id !== undefined && w?.operation === "PUT" && w.id === id) {
          shifts.push({ key: k, id, revision: e!.revision, kvRevision: w.revision });
        }
      } else if (e?.stale) parts.push(`${k}: stale`);
    }
    // Only when that is all it differs by.
    const shifted = shifts.length > 0 && shifts.length === parts.length ? shifts : undefined;
    return { diff: parts.join("; "), offlineLoader, valuesCurrent, shifted };
  }

  async tearDown(): Promise<void> {
    for (let slot = 0; slot < this.caches.length; slot++) {
      await this.closeCache(slot).catch(() => {});
    }
    await this.site.heal().catch(() => {});
    try {
      await this.kv.destroy();
    } catch { /* already gone */ }
    if (this.site.hubDomain) {
      const jsm = await jetstreamManager(this.site.reader, { checkAPI: false }).catch(() =>
        undefined
      );
      await jsm?.streams.delete(kvStreamName(this.bucket)).catch(() => {});
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Whether two records name the same message (key, operation, value id). */
function sameMessage(
  a: { key: string; operation: string; id?: string } | undefined,
  b: { key: string; operation: string; id?: string },
): boolean {
  return a !== undefined && a.key === b.key && a.operation === b.operation && a.id === b.id;
}

function errorName(err: unknown): string {
  return (err as Error)?.constructor?.name ?? "Error";
}

function idOf(v: Value): { id?: string } {
  return v && typeof v === "object" && "w" in v && typeof v.w === "string" ? { id: v.w } : {};
}

/** The schedule as lines, for a failure report. */
export function describeSchedule(s: Schedule): string {
  const lines = s.steps.map((st, i) => `  ${String(i).padStart(2)} ${describeStep(st)}`);
  return `mode ${JSON.stringify(s.mode)}\n${lines.join("\n")}`;
}

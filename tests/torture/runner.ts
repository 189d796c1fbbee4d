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
import { uniqueBucket, waitFor } from "../_setup.ts";
import {
  type Evidence,
  judge,
  type LoaderCall,
  type ReadObservation,
  type ReadResult,
  type StreamPurge,
  type Violation,
  type Written,
} from "./checker.ts";
import { latest, mirrorState, readHistory, type Revision, streamState } from "./history.ts";
import { type CacheShape, describeStep, OUTAGES, READ_KEYS, type Schedule } from "./schedule.ts";
import type { Site, World } from "./world.ts";

/** Bounds of the checker, ms: generous for a loaded two-core machine, stated in the docs. */
export const BOUNDS = {
  /** A read or a cache write must settle within this (missTimeoutMs 1 s, writeTimeoutMs 2 s). */
  opMs: 10_000,
  /** openCache() and close() must settle within this, online or not (the connect timeout is 5 s). */
  openMs: 15_000,
  /** After the last heal, every cache equals KV within this (rule 5). */
  convergeMs: 45_000,
  /** A cache saying `synced` (regional: and the hub reachable) equals KV within this. */
  syncedMs: 8_000,
  /** Once the values and the mirror are current, status says synced and the hub reachable within this. */
  statusMs: 5_000,
} as const;

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
  const site = await (mode.regional ? world.regional() : world.single());
  const run = new ScheduleRun(site, schedule);
  try {
    await run.setUp();
    for (let i = 0; i < schedule.steps.length; i++) await run.step(i);
    await run.finish();
  } finally {
    await run.tearDown();
  }
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
  readonly histories: Revision[][] = [];
  readonly purges: StreamPurge[] = [];
  readonly origin = new Map<string, string | undefined>();
  kv!: KV;
  cache: Cache<Value> | undefined;
  inst = -1;
  shape: CacheShape;
  snapshotOn: boolean;
  epoch = 0;
  lastDisturbance = 0;
  counter = 0;
  dir = "";
  ttlSupported = false;

  constructor(site: Site, schedule: Schedule) {
    this.site = site;
    this.schedule = schedule;
    this.shape = schedule.mode.shape;
    this.snapshotOn = schedule.mode.shape.snapshot;
    for (const k of READ_KEYS) this.origin.set(k, `L${k}-0`);
  }

  id(): string {
    return `s${this.schedule.seed}-${this.counter++}`;
  }

  count(what: string) {
    this.mix.set(what, (this.mix.get(what) ?? 0) + 1);
  }

  outage(): boolean {
    return [...this.site.active].some((f) => OUTAGES.has(f));
  }

  async createBucket(): Promise<void> {
    const kvm = new Kvm(jetstream(this.site.writer, { timeout: 2_000 }));
    this.ttlSupported = versionAtLeast(this.site.version, "2.11.0");
    this.kv = await kvm.create(this.bucket, {
      history: 64,
      ...(this.ttlSupported ? { markerTTL: 1_000 } : {}),
    });
    if (this.site.hubDomain) {
      await waitFor(
        () =>
          createRegionalMirror(this.site.reader, this.bucket, { hubDomain: this.site.hubDomain! }),
        { timeoutMs: 30_000, message: `mirror of ${this.bucket} created` },
      );
      const jsm = await jetstreamManager(this.site.reader);
      await waitFor(async () => {
        const m = (await jsm.streams.info(kvStreamName(this.bucket))).mirror;
        return m !== undefined && m.active >= 0 && m.active < 3e9;
      }, { timeoutMs: 30_000, message: `mirror of ${this.bucket} hears the hub` });
    }
  }

  async setUp(): Promise<void> {
    this.dir = await Deno.makeTempDir({ prefix: "kvedge_torture_" });
    await this.createBucket();
    await this.open();
  }

  options(): CacheOptions<Value> {
    const m = this.schedule.mode;
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
      mode: this.shape.mode,
      local: { maxItems: this.shape.maxItems },
      ...CACHE_TIMERS,
      ...(this.snapshotOn && !m.regional
        ? { snapshot: { path: `${this.dir}/cache.snap`, intervalMs: 0 } }
        : {}),
      ...(m.schema ? { schema: ValueSchema } : {}),
      ...(m.loader ? { loader: (key: string) => this.load(key) } : {}),
      ...(this.site.hubDomain
        ? { region: { hubDomain: this.site.hubDomain, checkMs: 200, maxSilenceMs: MAX_SILENCE_MS } }
        : {}),
    } as CacheOptions<Value>;
  }

  load(key: string): Promise<Value | undefined> {
    const id = this.origin.get(key);
    if (id === undefined) return Promise.resolve(undefined);
    const value = `${id}#${this.counter++}`; // one id per answer, to know when it was given
    this.loaderCalls.set(value, {
      key,
      id: value,
      at: Date.now(),
      offline: this.outage() || this.cache?.status().connected === false,
    });
    return Promise.resolve({ w: value });
  }

  async open(): Promise<void> {
    const inst = ++this.inst;
    const r = await within(openCache<Value>(this.options()), BOUNDS.openMs);
    if (r === "hang") {
      this.violations.push({
        rule: "rule 7",
        message: `openCache() #${inst} did not settle within ${BOUNDS.openMs} ms`,
      });
      this.cache = undefined;
      return;
    }
    if (!r.ok) {
      // Refusing to open while NATS is unreachable (without a usable snapshot) is allowed.
      if (!this.outage() && !(r.error instanceof KvedgeError)) {
        this.violations.push({ rule: "open", message: `openCache() #${inst} failed: ${r.error}` });
      }
      this.cache = undefined;
      return;
    }
    this.cache = r.value;
    // Opened online: let it sync first, so that what a schedule does next
    // (a fault, a close that writes the snapshot) meets a cache that is
    // ready, whatever the machine's load.
    if (!this.outage()) await within(r.value.ready({ timeoutMs: BOUNDS.openMs }), BOUNDS.openMs);
  }

  async closeCache(): Promise<void> {
    const c = this.cache;
    this.cache = undefined;
    if (!c) return;
    const r = await within(c.close(), BOUNDS.openMs);
    if (r === "hang") {
      this.violations.push({
        rule: "close",
        message: `close() did not settle within ${BOUNDS.openMs} ms`,
      });
    }
  }

  statusNow() {
    const s = this.cache?.status();
    return {
      state: s?.state ?? "closed",
      connected: s?.connected ?? false,
      ...(s?.region ? { hubReachable: s.region.hubReachable } : {}),
    };
  }

  async read(step: number, key: string, how: "get" | "getEntry" | "peek"): Promise<void> {
    const c = this.cache;
    if (!c) return;
    const start = Date.now();
    const before = this.statusNow();
    const outageStart = this.outage();
    const epoch = this.epoch;
    let result: ReadResult;
    if (how === "peek") {
      const v = c.peek(key);
      result = v === undefined ? { kind: "absent" } : { kind: "value", ...idOf(v) };
    } else {
      const r = await within<unknown>(how === "get" ? c.get(key) : c.getEntry(key), BOUNDS.opMs);
      if (r === "hang") result = { kind: "hang" };
      else if (!r.ok) result = errorResult(r.error);
      else if (r.value === undefined) result = { kind: "absent" };
      else if (how === "get") result = { kind: "value", ...idOf(r.value as Value) };
      else {
        const e = r.value as { value: Value; revision: number; source: string; stale: boolean };
        result = {
          kind: "value",
          ...idOf(e.value),
          revision: e.revision,
          source: e.source,
          stale: e.stale,
        };
      }
    }
    this.reads.push({
      inst: this.inst,
      key,
      how,
      step,
      start,
      end: Date.now(),
      epoch,
      before,
      after: this.statusNow(),
      outage: outageStart || this.outage(),
      lastDisturbance: this.lastDisturbance,
      result,
    });
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
    const r = await within(attempt(), 5_000);
    if (r !== "hang" && r.ok && r.value > 0) {
      const w = this.written.get(id);
      if (w && w.epoch === epoch) w.revision = r.value;
    }
  }

  async cacheWrite(step: number, op: "set" | "del", key: string): Promise<void> {
    const c = this.cache;
    if (!c) return;
    const id = this.id();
    if (op === "set") this.written.set(id, { key, epoch: this.epoch, ttl: false });
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
    } else if (op === "set") {
      const w = this.written.get(id);
      if (w && w.epoch === this.epoch) w.revision = r.value;
    }
  }

  /** Reads this incarnation's history before a purge or recreate destroys it. */
  async captureHistory(): Promise<boolean> {
    try {
      this.histories[this.epoch] = await readHistory(this.site.writer, this.bucket);
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
        return await this.cacheWrite(i, s.op, s.key);
      case "get":
      case "getEntry":
      case "peek":
        this.count(s.op);
        return await this.read(i, s.key, s.op);
      case "readAll":
        this.count("readAll");
        await Promise.all(READ_KEYS.map((k) => this.read(i, k, "getEntry")));
        return;
      case "reopen":
        this.count(`reopen${s.snapshot ? " snapshot" : ""}${s.shape ? " reshaped" : ""}`);
        await this.closeCache();
        if (s.shape) this.shape = s.shape;
        this.snapshotOn = s.snapshot && !this.schedule.mode.regional;
        await this.open();
        return;
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
        const jsm = await jetstreamManager(this.site.writer, { timeout: 5_000 });
        await jsm.streams.purge(kvStreamName(this.bucket));
        this.purges.push({ epoch: this.epoch, lastSeq: state.lastSeq, at: Date.now() });
      } else {
        await this.kv.destroy();
        this.epoch++;
        await this.createBucket();
      }
      this.count(`fault ${kind}`);
      this.lastDisturbance = Date.now();
      return;
    }
    if (this.site.active.has(kind)) return;
    await this.site.fault(kind);
    if (this.site.active.has(kind)) this.count(`fault ${kind}`);
    this.lastDisturbance = Date.now();
  }

  /** Heals, checks convergence and the status, then judges every read. */
  async finish(): Promise<void> {
    await this.site.heal();
    this.lastDisturbance = Date.now();
    if (!this.cache) {
      const opened = await waitFor(async () => {
        await this.open();
        return this.cache !== undefined;
      }, { timeoutMs: BOUNDS.convergeMs, message: "the cache opens after the last heal" })
        .then(() => true, (err: Error) => {
          // Reported with the schedule's seed like any violation, not thrown
          // out of the batch (one did, on a loaded machine, ending the run).
          this.violations.push({ rule: "open", message: err.message });
          return false;
        });
      if (!opened) return;
    }
    await this.converge();
    await this.captureHistory();
    this.violations.push(
      ...judge(
        {
          histories: this.histories,
          purges: this.purges,
          written: this.written,
          reads: this.reads,
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
  async converge(): Promise<void> {
    const c = this.cache!;
    let want = await latest(this.site.writer, this.bucket, READ_KEYS);
    const start = Date.now();
    let syncedSince: number | undefined;
    let diff = "";
    let offlineLoader = "";
    for (;;) {
      const st = c.status();
      const synced = st.state === "synced" && st.region?.hubReachable !== false;
      if (synced) syncedSince ??= Date.now();
      else syncedSince = undefined;
      // Re-read each time: a per-key TTL may expire a key meanwhile.
      want = await latest(this.site.writer, this.bucket, READ_KEYS);
      const d = await this.differences(c, want);
      diff = d.diff;
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
        this.violations.push({
          rule: offlineLoader ? "loader after NATS" : "rule 5",
          message: `not converged ${BOUNDS.convergeMs} ms after the last heal: ${
            offlineLoader || diff || `state ${st.state}`
          } (status ${
            JSON.stringify({ state: st.state, connected: st.connected, region: st.region })
          })`,
        });
        return;
      }
      await sleep(100);
    }
    if (this.site.hubDomain && !this.#probed) await this.probeRegion(c);
  }

  #probed = false;

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
      } else if (e?.stale) parts.push(`${k}: stale`);
    }
    return { diff: parts.join("; "), offlineLoader, valuesCurrent };
  }

  async tearDown(): Promise<void> {
    await this.closeCache().catch(() => {});
    await this.site.heal().catch(() => {});
    try {
      await this.kv.destroy();
    } catch { /* already gone */ }
    if (this.site.hubDomain) {
      const jsm = await jetstreamManager(this.site.reader).catch(() => undefined);
      await jsm?.streams.delete(kvStreamName(this.bucket)).catch(() => {});
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

function idOf(v: Value): { id?: string } {
  return v && typeof v === "object" && "w" in v && typeof v.w === "string" ? { id: v.w } : {};
}

/** The schedule as lines, for a failure report. */
export function describeSchedule(s: Schedule): string {
  const lines = s.steps.map((st, i) => `  ${String(i).padStart(2)} ${describeStep(st)}`);
  return `mode ${JSON.stringify(s.mode)}\n${lines.join("\n")}`;
}

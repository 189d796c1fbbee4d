/**
 * A regional edge's link to the hub: the edge reads a local mirror of the
 * bucket (on its region's leaf node) and writes to the hub's bucket through
 * the hub's JetStream domain. The mirror's stream info, read on a timer, says
 * whether the mirror still hears from the hub (`mirror.active`) and how far
 * behind it is (`mirror.lag`): the watcher on the mirror cannot know either.
 *
 * @module
 */
import type { JetStreamManager, MsgRequest, StreamInfo } from "@nats-io/jetstream";
import { UnavailableError } from "./errors.ts";
import { kvStreamName, kvSubjectPrefix } from "./kv_layout.ts";
import { MirrorShortfall } from "./mirror_shortfall.ts";
import type { RegionStatus } from "./types.ts";
import { deadline, unref } from "./async.ts";

/** What a regional cache is configured with (after validation). */
export interface ResolvedRegion {
  hubDomain: string;
  checkMs: number;
  maxSilenceMs: number;
}

/** The JetStream API prefix of a domain, as nats-server maps it (`$JS.<domain>.API`). */
export function domainApi(domain: string): string {
  return `$JS.${domain}.API`;
}

/**
 * The subject prefix of writes to the hub's bucket from inside a region,
 * `$JS.<hubDomain>.API.$KV.<bucket>.`: the hub maps it to `$KV.<bucket>.`
 * (nats-server's domain mapping; nats.js writes to a mirrored bucket the same
 * way). Throws a `TypeError` unless the local `KV_<bucket>` is a mirror of the
 * hub's `KV_<bucket>` in that domain.
 */
export function hubWritePrefix(
  info: StreamInfo,
  { bucket, hubDomain }: { bucket: string; hubDomain: string },
): string {
  const stream = kvStreamName(bucket);
  const mirror = info.config.mirror;
  const why = (s: string) =>
    new TypeError(
      `Cannot open cache: "region" needs ${stream} on the regional server to be a mirror of ${stream} in domain "${hubDomain}", ${s} (create it with \`deno task kv mirror ${bucket} --hub-domain ${hubDomain}\`)`,
    );
  if (!mirror) throw why("but it is not a mirror");
  if (mirror.name !== stream) throw why(`but it mirrors ${mirror.name}`);
  const api = mirror.external?.api ?? "";
  if (api !== domainApi(hubDomain)) {
    throw why(`but it mirrors through "${api || "its own domain"}"`);
  }
  return `${api}.${kvSubjectPrefix(bucket)}`;
}

/**
 * Least time between two checks asked for by {@link RegionLink.nudge}, ms: a
 * mirror copying a backlog delivers many changes, one check is enough.
 */
const NUDGE_SPACING_MS = 100;
/**
 * A mirror in sync is compared with the hub again after this long (at the
 * least five checks): a WAN cut shorter than `maxSilenceMs` never takes the
 * link out of sync, yet nats-server 2.9.10 lost revisions in one (torture
 * seed 13242938), and only a comparison finds them.
 */
const RECOMPARE_MS = 5_000;

/**
 * Reads the mirror's state on a timer and reports the hub link's changes.
 *
 * A belief ages: when no check has succeeded for `maxSilenceMs` (the
 * region's JetStream API stopped answering, or this edge cannot reach it),
 * the hub counts as unreachable, as when the mirror itself has not heard
 * from the hub for that long. Nothing known is nothing vouched for.
 */
/** Options of {@link RegionLink}. */
export interface RegionLinkOptions {
  /** The region's JetStream manager (the mirror's). */
  jsm: JetStreamManager;
  /** The bucket. */
  bucket: string;
  /** The region's settings. */
  region: ResolvedRegion;
  /** The mirror's stream info read at open. */
  info: StreamInfo;
  /** Reads the hub's stream (in its domain), to find a mirror that lost revisions. */
  hub?: JetStreamManager;
}

export class RegionLink {
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #subjects: string;
  readonly #r: ResolvedRegion;
  #reachable = false;
  #inSync = false;
  #lag = 0;
  #activeMs = -1;
  #lastSeq = 0;
  /** The hub's bucket, through its domain: to check the mirror against it. */
  readonly #hub: JetStreamManager | undefined;
  /** When the mirror was last compared with the hub (epoch ms; 0: not since open). */
  #comparedAt = 0;
  /** Messages the hub holds that the mirror lacks at the same last sequence. */
  #missing = 0;
  /** When the mirror last stored a message, had no lag, or was not hearing the hub (epoch ms). */
  #progressAt = 0;
  /** How long the mirror has lagged while hearing the hub without storing anything, ms. */
  #stalledMs = 0;
  /** A mirror with no lag that stays behind the hub's last sequence. */
  readonly #short: MirrorShortfall;
  /** What is wrong with the mirror, as last told to `onChange` (see {@link diagnosis}). */
  #told: "missing" | "stalled" | undefined;
  /** When a check last succeeded (epoch ms). */
  #checkedAt = 0;
  /** When a check last started (epoch ms). */
  #attemptedAt = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #nudgeTimer: ReturnType<typeof setTimeout> | undefined;
  #onChange: ((reachable: boolean) => void) | undefined;
  #onRead: (() => (info: StreamInfo) => void) | undefined;
  #checking: Promise<void> | undefined;

  /** No I/O; see {@link RegionLinkOptions}. */
  constructor(options: RegionLinkOptions) {
    this.#jsm = options.jsm;
    this.#hub = options.hub;
    this.#stream = kvStreamName(options.bucket);
    this.#subjects = `${kvSubjectPrefix(options.bucket)}>`;
    this.#r = options.region;
    this.#short = new MirrorShortfall(2 * this.#r.maxSilenceMs);
    this.#read(options.info);
  }

  /**
   * Whether the mirror heard from the hub within `maxSilenceMs` at the last
   * check, and that check is at most `maxSilenceMs` old (as of the last tick).
   */
  get reachable(): boolean {
    return this.#reachable;
  }

  /**
   * Whether the mirror can vouch for the hub's latest state: reachable, and,
   * after having been cut off, back to no lag (the backlog is in the mirror).
   */
  get inSync(): boolean {
    return this.#inSync;
  }

  /**
   * Starts the checks; `onChange` hears every change of {@link inSync}.
   * `onRead` is called as each read of the mirror's state begins, and the
   * function it returns gets the state read.
   */
  start(
    onChange: (reachable: boolean) => void,
    onRead?: () => (info: StreamInfo) => void,
  ): void {
    this.#onChange = onChange;
    this.#onRead = onRead;
    this.#timer = setInterval(() => {
      // A check still unanswered says nothing new: only let the belief age.
      if (this.#checking) this.#expire();
      else void this.check();
    }, this.#r.checkMs);
    unref(this.#timer);
  }

  /**
   * Reads the mirror's stream info now (or joins the read in flight). A read
   * that fails, or is unanswered after `maxSilenceMs` (then another may
   * start; a late answer still counts), changes nothing but the belief's
   * age: once no read succeeded for `maxSilenceMs`, the hub counts as
   * unreachable.
   */
  check(): Promise<void> {
    if (this.#checking) return this.#checking;
    this.#attemptedAt = Date.now();
    const started = this.#attemptedAt;
    // An answer after the deadline still counts, unless a newer one came first.
    const seen = this.#onRead?.();
    const read = this.#jsm.streams.info(this.#stream).then(async (info) => {
      seen?.(info);
      await this.#compare(info);
      if (this.#checkedAt <= started) this.#read(info);
    });
    read.catch(() => {}); // abandoned at the deadline: its own timeout ends it
    this.#checking = deadline(read, this.#r.maxSilenceMs, { unref: true })
      .then(() => {}, () => this.#expire())
      .finally(() => {
        this.#checking = undefined;
      });
    return this.#checking;
  }

  /**
   * Something suggests the link changed (the mirror delivered changes while
   * cut off, or the hub acknowledged a write): a check starts within
   * {@link NUDGE_SPACING_MS} (after the one in flight, if any) instead of at
   * the next tick, so `status()` follows the link without waiting `checkMs`.
   */
  nudge(): void {
    if (this.#inSync || this.#nudgeTimer !== undefined || this.#onChange === undefined) return;
    const wait = Math.max(0, this.#attemptedAt + NUDGE_SPACING_MS - Date.now());
    this.#nudgeTimer = setTimeout(() => {
      this.#nudgeTimer = undefined;
      if (this.#inSync || this.#onChange === undefined) return;
      // One in flight may have started before the evidence: check after it.
      if (this.#checking) void this.#checking.then(() => this.nudge());
      else void this.check();
    }, wait);
    unref(this.#nudgeTimer);
  }

  /** The error of a write the hub did not answer while the link is down (`cause`: the client's error). */
  unreachable(action: string, cause: unknown): UnavailableError {
    return new UnavailableError(
      `Cannot ${action}: the hub (domain "${this.#r.hubDomain}") is unreachable from this region`,
      { cause },
    );
  }

  /** The link as `status().region` reports it. */
  status(): RegionStatus {
    return {
      hubDomain: this.#r.hubDomain,
      hubReachable: this.#reachable,
      mirrorLag: this.#lag,
      mirrorActiveMs: this.#activeMs,
      mirrorLastRevision: this.#lastSeq,
      mirrorMissing: this.#missing,
      mirrorStalledMs: this.#stalledMs,
      checkedAt: this.#checkedAt,
    };
  }

  /**
   * Why the mirror cannot vouch for the hub although it hears from it, in
   * words for `lastError`; undefined when nothing is known to be wrong. A
   * mirror that lacks revisions the hub holds (`mirrorMissing`), or one that
   * has stored nothing for twice `maxSilenceMs` while lagging behind the hub
   * it hears (`mirrorStalledMs`: a message it cannot store, such as one over
   * the region's `max_payload`, or a server defect, docs/nats-versions.md),
   * or one that reports no lag yet has stood behind a message the hub holds
   * for as long (`mirrorStalledMs` too: nats-server dropped a message the
   * mirror cannot store, e.g. one over its `max_msg_size`, without a word).
   * Either way only re-creating the mirror helps.
   *
   * @example
   * ```ts ignore
   * const why = link.diagnosis(); // "it lacks 1 revision(s) the hub holds …"
   * ```
   */
  diagnosis(): string | undefined {
    const fix = "(re-create it: docs/topologies.md)";
    const short = this.#short.found;
    switch (this.#wrong()) {
      case "missing":
        return `it lacks ${this.#missing} revision(s) the hub holds at the same last revision ${fix}`;
      case "stalled":
        if (short !== undefined) {
          return `it has stored nothing past revision ${short.mirrorLast} for ` +
            `${Math.round(this.#stalledMs / 1000)} s while the hub it hears from holds revision ` +
            `${short.hubSeq}, yet it reports no lag (a message it cannot store, e.g. over its ` +
            `max_msg_size or the region's max_payload, dropped without a word) ${fix}`;
        }
        return `it has stored nothing for ${Math.round(this.#stalledMs / 1000)} s while ` +
          `${this.#lag} message(s) behind the hub it hears from (one it cannot store, e.g. over ` +
          `the region's max_payload, or a server defect) ${fix}`;
      default:
        return undefined;
    }
  }

  #wrong(): "missing" | "stalled" | undefined {
    if (this.#missing > 0) return "missing";
    return this.#stalledMs > 2 * this.#r.maxSilenceMs ? "stalled" : undefined;
  }

  /** Stops the checks. Idempotent. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#nudgeTimer !== undefined) clearTimeout(this.#nudgeTimer);
    this.#timer = undefined;
    this.#nudgeTimer = undefined;
    this.#onChange = undefined;
    this.#onRead = undefined;
  }

  /** No check succeeded for `maxSilenceMs`: the hub counts as unreachable. */
  #expire(): void {
    if (!this.#reachable || Date.now() - this.#checkedAt <= this.#r.maxSilenceMs) return;
    this.#reachable = false;
    this.#setInSync(false);
  }

  #setInSync(inSync: boolean): void {
    if (inSync === this.#inSync) return;
    this.#inSync = inSync;
    this.#onChange?.(inSync);
  }

  /**
   * Compares the mirror with the hub's stream once after open, whenever the
   * link is about to vouch for the mirror again, while a loss is known or a
   * mirror with no lag stands behind the hub ({@link MirrorShortfall}), and
   * every {@link RECOMPARE_MS} (or five checks) while it vouches:
   * at the same last sequence a straight copy holds as many messages as the
   * hub (it keeps at least the hub's history and age, and honours no per-key
   * TTL, so it may hold more, never fewer). Fewer: the mirror skipped
   * revisions the hub holds (nats-server 2.9.10 did after a WAN cut,
   * docs/nats-versions.md), so it cannot vouch for the hub until it is
   * re-created. Inconclusive (the hub moved on, or did not answer): keeps
   * what it knew.
   */
  async #compare(info: StreamInfo): Promise<void> {
    if (this.#hub === undefined || info.mirror === undefined) return;
    this.#short.mirror(info.state.last_seq, this.#hears(info));
    // A lagging mirror is compared only once stalled (then the lag it reports is stuck).
    if (info.mirror.lag !== 0 && this.#wrong() !== "stalled") return;
    const fresh = Date.now() - this.#comparedAt < Math.max(RECOMPARE_MS, 5 * this.#r.checkMs);
    const idle = this.#missing === 0 && !this.#short.pending;
    if (this.#comparedAt > 0 && this.#inSync && idle && fresh) return;
    let hub: StreamInfo;
    try {
      hub = await this.#hub.streams.info(this.#stream);
    } catch {
      return;
    }
    await this.#shortOf(info, hub);
    if (hub.state.last_seq !== info.state.last_seq) return;
    this.#comparedAt = Date.now();
    this.#missing = Math.max(0, hub.state.messages - info.state.messages);
  }

  /**
   * A mirror with no lag behind the hub's last sequence read after it: told
   * to {@link MirrorShortfall}, which asks, once it has stood there for twice
   * `maxSilenceMs`, for the hub's first message above the mirror's last
   * sequence (one read; a failed one is asked again at the next check).
   */
  async #shortOf(info: StreamInfo, hub: StreamInfo): Promise<void> {
    if (info.mirror?.lag !== 0 || !this.#hears(info)) return;
    const from = this.#short.hub({
      mirrorLast: info.state.last_seq,
      hubLast: hub.state.last_seq,
      now: Date.now(),
    });
    if (from === undefined) return;
    try {
      // nats-server takes `next_by_subj` in STREAM.MSG.GET (2.9.0 on); nats.js
      // types it for direct gets only, which leaf.conf's edge may not send.
      const next = { seq: from, next_by_subj: this.#subjects } as unknown as MsgRequest;
      const m = await this.#hub!.streams.getMessage(this.#stream, next);
      this.#short.probed(from, m?.seq ?? 0);
    } catch {
      // Inconclusive: asked again at the next check.
    }
  }

  /** Whether the mirror heard from the hub within `maxSilenceMs`, as `info` says. */
  #hears(info: StreamInfo): boolean {
    const m = info.mirror;
    return m !== undefined && m.active >= 0 &&
      Math.round(m.active / 1e6) <= this.#r.maxSilenceMs && m.error === undefined;
  }

  #read(info: StreamInfo): void {
    const m = info.mirror;
    // `active` is nanoseconds since the mirror last heard from its origin
    // (messages or the origin consumer's 1 s heartbeats); -1: never.
    this.#activeMs = m === undefined || m.active < 0 ? -1 : Math.round(m.active / 1e6);
    this.#lag = m?.lag ?? 0;
    const stored = info.state.last_seq !== this.#lastSeq;
    this.#lastSeq = info.state.last_seq;
    this.#checkedAt = Date.now();
    this.#reachable = this.#hears(info);
    if (stored || !this.#reachable || this.#lag === 0 || this.#progressAt === 0) {
      this.#progressAt = this.#checkedAt;
    }
    this.#short.mirror(this.#lastSeq, this.#reachable);
    this.#stalledMs = Math.max(
      this.#checkedAt - this.#progressAt,
      this.#short.stalledMs(this.#checkedAt),
    );
    // Leaving the cut-off state waits for the backlog; under steady traffic
    // the lag is rarely exactly 0, so an in-sync link stays so while reachable
    // and storing. A mirror known to lack revisions the hub holds, or stalled,
    // vouches for nothing.
    const wrong = this.#wrong();
    const was = this.#inSync;
    this.#setInSync(this.#reachable && wrong === undefined && (this.#inSync || this.#lag === 0));
    // A new reason not to vouch is told too, though the link was out of sync already.
    if (wrong !== undefined && wrong !== this.#told && was === this.#inSync) {
      this.#onChange?.(this.#inSync);
    }
    this.#told = wrong;
  }
}

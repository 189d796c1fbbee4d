/**
 * A regional edge's link to the hub: the edge reads a local mirror of the
 * bucket (on its region's leaf node) and writes to the hub's bucket through
 * the hub's JetStream domain. The mirror's stream info, read on a timer, says
 * whether the mirror still hears from the hub (`mirror.active`) and how far
 * behind it is (`mirror.lag`): the watcher on the mirror cannot know either.
 *
 * @module
 */
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import { UnavailableError } from "./errors.ts";
import { kvStreamName, kvSubjectPrefix } from "./kv_layout.ts";
import type { RegionStatus } from "./types.ts";
import { unref } from "./watcher.ts";

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
export function hubWritePrefix(info: StreamInfo, bucket: string, hubDomain: string): string {
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

/** Reads the mirror's state on a timer and reports the hub link's changes. */
export class RegionLink {
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #r: ResolvedRegion;
  #reachable = false;
  #inSync = false;
  #lag = 0;
  #activeMs = -1;
  #lastSeq = 0;
  #checkedAt = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #onChange: ((reachable: boolean) => void) | undefined;
  #checking = false;

  /** No I/O; `info` is the mirror's stream info read at open. */
  constructor(jsm: JetStreamManager, bucket: string, region: ResolvedRegion, info: StreamInfo) {
    this.#jsm = jsm;
    this.#stream = kvStreamName(bucket);
    this.#r = region;
    this.#read(info);
  }

  /** Whether the mirror heard from the hub within `maxSilenceMs` at the last check. */
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

  /** Starts the checks; `onChange` hears every change of {@link inSync}. */
  start(onChange: (reachable: boolean) => void): void {
    this.#onChange = onChange;
    this.#timer = setInterval(() => void this.check(), this.#r.checkMs);
    unref(this.#timer);
  }

  /** Reads the mirror's stream info now. A failed read changes nothing (the connection says why). */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      this.#read(await this.#jsm.streams.info(this.#stream));
    } catch {
      // Disconnected from the leaf, or the mirror is being recreated: the
      // cache's own connection and reconciliation handle those.
    } finally {
      this.#checking = false;
    }
  }

  /** Throws `UnavailableError` when the hub was unreachable at the last check. */
  assertReachable(action: string): void {
    if (!this.#reachable) {
      throw new UnavailableError(
        `Cannot ${action}: the hub (domain "${this.#r.hubDomain}") is unreachable from this region`,
      );
    }
  }

  /** The link as `status().region` reports it. */
  status(): RegionStatus {
    return {
      hubDomain: this.#r.hubDomain,
      hubReachable: this.#reachable,
      mirrorLag: this.#lag,
      mirrorActiveMs: this.#activeMs,
      mirrorLastRevision: this.#lastSeq,
      checkedAt: this.#checkedAt,
    };
  }

  /** Stops the checks. Idempotent. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#onChange = undefined;
  }

  #read(info: StreamInfo): void {
    const m = info.mirror;
    // `active` is nanoseconds since the mirror last heard from its origin
    // (messages or the origin consumer's 1 s heartbeats); -1: never.
    this.#activeMs = m === undefined || m.active < 0 ? -1 : Math.round(m.active / 1e6);
    this.#lag = m?.lag ?? 0;
    this.#lastSeq = info.state.last_seq;
    this.#checkedAt = Date.now();
    this.#reachable = this.#activeMs >= 0 && this.#activeMs <= this.#r.maxSilenceMs &&
      m?.error === undefined;
    // Leaving the cut-off state waits for the backlog; under steady traffic
    // the lag is rarely exactly 0, so an in-sync link stays so while reachable.
    const inSync = this.#reachable && (this.#inSync || this.#lag === 0);
    if (inSync === this.#inSync) return;
    this.#inSync = inSync;
    this.#onChange?.(inSync);
  }
}

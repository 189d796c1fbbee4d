/**
 * A regional mirror that reports no lag yet stays short of the hub's last
 * sequence. nats-server drops a hub message its mirror cannot store (one over
 * the mirror's `max_msg_size`, say) without a word: 2.15.2 stores nothing
 * more and reports lag 0 until the hub writes again, 2.9.10 stores the next
 * message one sequence down and reports lag 0 for good (docs/nats-versions.md).
 * Neither lag nor the stall rule sees it; only the hub's last sequence does.
 *
 * A mirror catching up stores (its last sequence moves), and a quiet hub's
 * last sequence equals its mirror's, so a suspicion is a mirror behind the
 * hub, at one last sequence, for longer than a grace period; it is confirmed
 * by one read of the hub's first message above the mirror's last sequence
 * (none: the hub's newest messages are gone, e.g. expired, nothing is lost).
 *
 * @module
 */

/** Where the mirror stands short of the hub: see {@link MirrorShortfall.found}. */
export interface Shortfall {
  /** The mirror's last sequence. */
  mirrorLast: number;
  /** The sequence of the hub's first message above it. */
  hubSeq: number;
  /** Since when the mirror has stood at `mirrorLast` behind the hub (epoch ms). */
  since: number;
}

/**
 * Judges, from the mirror's and the hub's last sequences, whether a mirror
 * is short of a message the hub holds. The region link calls {@link mirror}
 * at each read of the mirror, {@link hub} with the hub's last sequence read
 * after it, and {@link probed} with the answer of the read it asks for.
 *
 * @example
 * ```ts
 * import { MirrorShortfall } from "./mirror_shortfall.ts";
 * const s = new MirrorShortfall(6_000);
 * s.mirror(1, true);
 * s.hub({ mirrorLast: 1, hubLast: 3, now: 0 }); // behind: a suspicion starts
 * const from = s.hub({ mirrorLast: 1, hubLast: 3, now: 7_000 }); // still there past the grace: read the hub above 1
 * if (from !== undefined) s.probed(from, 2); // the hub holds sequence 2
 * console.log(s.found); // { mirrorLast: 1, hubSeq: 2, since: 0 }
 * ```
 */
export class MirrorShortfall {
  readonly #graceMs: number;
  /** The mirror's last sequence while behind the hub, since when, and what a probe there found. */
  #behind:
    | { last: number; since: number; hubLast: number; probedHubLast: number; hubSeq: number }
    | undefined;

  /** `graceMs`: how long a mirror may stand behind the hub before the hub is asked. */
  constructor(graceMs: number) {
    this.#graceMs = graceMs;
  }

  /** Whether a suspicion is pending: the link then compares with the hub at every check. */
  get pending(): boolean {
    return this.#behind !== undefined;
  }

  /** The mirror is known to lack a message the hub holds, or undefined. */
  get found(): Shortfall | undefined {
    const b = this.#behind;
    if (b === undefined || b.hubSeq === 0) return undefined;
    return { mirrorLast: b.last, hubSeq: b.hubSeq, since: b.since };
  }

  /**
   * The mirror was read: at `last`, `hears` the hub or not. A mirror that
   * stored is no longer suspected; one that does not hear the hub is not
   * either, unless found short already (not hearing the hub stores nothing,
   * and after a cut the hub is ahead until the mirror is told so).
   */
  mirror(last: number, hears: boolean): void {
    const b = this.#behind;
    if (b !== undefined && (b.last !== last || (!hears && b.hubSeq === 0))) {
      this.#behind = undefined;
    }
  }

  /**
   * The hub's last sequence `hubLast`, read at `now` after the mirror (at
   * `mirrorLast`, no lag) was. Returns the sequence from which to read the
   * hub's first message once the mirror has stood behind for longer than the
   * grace period, else undefined.
   */
  hub(
    { mirrorLast, hubLast, now }: { mirrorLast: number; hubLast: number; now: number },
  ): number | undefined {
    const b = this.#behind;
    if (hubLast <= mirrorLast) {
      this.#behind = undefined;
      return undefined;
    }
    if (b === undefined || b.last !== mirrorLast) {
      this.#behind = { last: mirrorLast, since: now, hubLast, probedHubLast: 0, hubSeq: 0 };
      return undefined;
    }
    if (b.hubSeq === 0 && b.probedHubLast !== 0 && hubLast !== b.probedHubLast) {
      // Nothing was lost up to the last probe; the hub has written since.
      b.since = now;
      b.probedHubLast = 0;
    }
    b.hubLast = hubLast;
    if (b.probedHubLast !== 0 || now - b.since <= this.#graceMs) return undefined;
    return mirrorLast + 1;
  }

  /**
   * The answer of the read {@link hub} asked for, from sequence `from`: the
   * sequence of the hub's first message there, or 0 if it holds none.
   */
  probed(from: number, hubSeq: number): void {
    const b = this.#behind;
    if (b === undefined || b.last + 1 !== from) return;
    b.probedHubLast = b.hubLast;
    b.hubSeq = hubSeq;
  }

  /** How long the mirror has stood short of a message the hub holds, ms at `now` (0: not known to). */
  stalledMs(now: number): number {
    const f = this.found;
    return f === undefined ? 0 : now - f.since;
  }
}

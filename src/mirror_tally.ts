/**
 * Messages a stream holds that its watcher never delivered. A watcher over
 * the whole stream (no key filter) is delivered every message stored at or
 * after its start, in sequence order; messages only ever leave the stream
 * (limits, rollups, TTL) otherwise. So once the watcher has passed the
 * stream's last sequence, the stream holds at most what it held before the
 * consumer started plus what the consumer delivered since. More means a
 * message was stored below where the watcher already was: a regional mirror
 * that copies its backlog out of order (nats-server 2.9.10 after a WAN cut,
 * docs/nats-versions.md), which no stream info, lag or hub comparison shows.
 *
 * @module
 */

/** What the watcher stood at when a read of the stream's state began: see {@link MirrorTally.mark}. */
export interface TallyMark {
  /** The consumer the mark belongs to. */
  readonly consumer: number;
  /** Messages that consumer had delivered. */
  readonly delivered: number;
  /** The watcher's last revision. */
  readonly lastRevision: number;
}

/** The stream's state as a read of its info answers it. */
export interface TallyState {
  /** Messages the stream holds. */
  messages: number;
  /** Its last sequence. */
  last_seq: number;
}

/**
 * Counts a watcher's deliveries per consumer against the stream's message
 * count. The watcher calls {@link readBefore}, {@link opened} and
 * {@link delivered}; whoever reads the stream's state calls {@link mark}
 * before the read and {@link unseen} with its answer.
 *
 * @example
 * ```ts
 * import { MirrorTally } from "./mirror_tally.ts";
 * const t = new MirrorTally();
 * t.readBefore(0); // the stream was empty when the consumer started at sequence 1
 * t.opened(true);
 * t.delivered(); // sequence 14 arrived first
 * const mark = t.mark(14);
 * console.log(t.unseen(mark, { messages: 12, last_seq: 14 })); // 11: stored below it
 * ```
 */
export class MirrorTally {
  #consumer = 0;
  #delivered = 0;
  /** Messages held when counting began, and what the consumer had delivered then. */
  #base: { messages: number; delivered: number } | undefined;
  /** The stream's message count read before the next consumer is created. */
  #next: number | undefined;

  /** The stream's message count, read before the next consumer is created. */
  readBefore(messages: number): void {
    this.#next = messages;
  }

  /**
   * A consumer was created. `fromSeq`: it delivers every message from a
   * sequence on, so the count read before it is the base. A snapshot
   * (last per key) skips superseded messages: its base is the first state
   * read once the watcher has passed it (see {@link unseen}).
   */
  opened(fromSeq: boolean): void {
    this.#consumer++;
    this.#delivered = 0;
    const n = this.#next;
    this.#base = fromSeq && n !== undefined ? { messages: n, delivered: 0 } : undefined;
    this.#next = undefined;
  }

  /** The current consumer delivered a message above the last revision. */
  delivered(): void {
    this.#delivered++;
  }

  /** Taken when a read of the stream's state begins, with the watcher's last revision. */
  mark(lastRevision: number): TallyMark {
    return { consumer: this.#consumer, delivered: this.#delivered, lastRevision };
  }

  /**
   * Messages in `state` (read after `mark`) that the watcher never delivered
   * and never will: 0 unless the read is judged (same consumer, the watcher
   * had passed the stream's last sequence when it began).
   */
  unseen(mark: TallyMark, state: TallyState): number {
    if (mark.consumer !== this.#consumer || state.last_seq > mark.lastRevision) return 0;
    if (this.#base === undefined) {
      this.#base = { messages: state.messages, delivered: mark.delivered };
      return 0;
    }
    const since = this.#delivered - this.#base.delivered;
    return Math.max(0, state.messages - this.#base.messages - since);
  }
}

/**
 * The numbers of a JetStream ack reply subject, read in place: the watcher
 * needs four numbers of every delivery's reply subject (its gap detection and
 * catch-up depend on them) and `split(".")` made an array and nine to twelve
 * strings per message for it. {@link AckSubject.read} finds the dots with
 * `indexOf` and reads the digits with `charCodeAt`: no allocation.
 *
 * Layouts (nats.js `parseInfo`, `@nats-io/jetstream` jsmsg.ts):
 * - v1, 9 tokens: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
 * - v2, 11 or 12 tokens: `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<random>]`
 *   (domain `_` when none).
 *
 * @module
 */

/** Most dots a reply subject's numbers can follow (v2 with its random token has 11). */
const MAX_DOTS = 12;

/**
 * Reads the stream sequence, consumer sequence, timestamp and pending count
 * of an ack reply subject into its fields; one instance is reused for every
 * message (the fields hold the last subject read).
 *
 * A token that is not all digits reads `NaN` (as `Number()` would), a missing
 * one `NaN`, an empty one 0. Numbers above 2⁵³ are not exact (sequences and
 * counts never get there). The timestamp is floored to whole milliseconds
 * exactly from its digits (`Math.floor(Number(ts) / 1e6)` rounds the
 * nanoseconds to a double first and may land 1 ms late).
 *
 * @example
 * ```ts
 * import { AckSubject } from "./ack_subject.ts";
 *
 * const ack = new AckSubject();
 * ack.read("$JS.ACK.KV_users.c1.1.42.7.1733000000123456789.3");
 * console.log(ack.streamSeq, ack.consumerSeq, ack.timestampMs, ack.pending);
 * // 42 7 1733000000123 3
 * ```
 */
export class AckSubject {
  /** The message's stream sequence (a KV revision). */
  streamSeq = 0;
  /** The consumer's delivery sequence (consecutive: a jump is a gap). */
  consumerSeq = 0;
  /** When the message was stored, ms since the epoch (floored). */
  timestampMs = 0;
  /** Messages the consumer still had to deliver after this one. */
  pending = 0;
  readonly #dots = new Int32Array(MAX_DOTS);
  /** Start and end of the stream sequence, consumer sequence, timestamp, pending tokens (-1: none). */
  readonly #at = new Int32Array(8);

  /**
   * Reads the numbers of `msg`'s reply subject; false if it has none. Reads
   * its bytes where nats.js keeps them (`_msg.reply` of its `MsgImpl`, not
   * public: decoding the subject to a string cost a `TextDecoder` call a
   * message), else the string.
   */
  readReply(msg: { reply?: string }): boolean {
    const bytes = (msg as { _msg?: { reply?: unknown } })._msg?.reply;
    if (bytes instanceof Uint8Array) {
      if (bytes.length === 0) return false;
      this.readBytes(bytes);
      return true;
    }
    const reply = msg.reply;
    if (!reply) return false;
    this.read(reply);
    return true;
  }

  /** Reads `reply`'s numbers into the fields. */
  read(reply: string): void {
    const dots = this.#dots;
    let n = 0;
    for (let at = reply.indexOf("."); at !== -1; at = reply.indexOf(".", at + 1)) {
      if (n < MAX_DOTS) dots[n] = at;
      n++;
    }
    const at = this.#ranges(n, reply.length);
    this.streamSeq = at[0]! < 0 ? NaN : digits(reply, at[0]!, at[1]!);
    this.consumerSeq = at[2]! < 0 ? NaN : digits(reply, at[2]!, at[3]!);
    this.pending = at[6]! < 0 ? NaN : digits(reply, at[6]!, at[7]!);
    // The timestamp in nanoseconds: all but its last 6 digits are the milliseconds.
    const cut = Math.max(at[4]!, at[5]! - 6);
    this.timestampMs = at[4]! < 0 || Number.isNaN(digits(reply, cut, at[5]!))
      ? NaN
      : digits(reply, at[4]!, cut);
  }

  /** Reads the numbers of a reply subject's UTF-8 bytes into the fields. */
  readBytes(reply: Uint8Array): void {
    const dots = this.#dots;
    let n = 0;
    for (let j = 0; j < reply.length; j++) {
      if (reply[j] !== DOT) continue;
      if (n < MAX_DOTS) dots[n] = j;
      n++;
    }
    const at = this.#ranges(n, reply.length);
    this.streamSeq = at[0]! < 0 ? NaN : digitBytes(reply, at[0]!, at[1]!);
    this.consumerSeq = at[2]! < 0 ? NaN : digitBytes(reply, at[2]!, at[3]!);
    this.pending = at[6]! < 0 ? NaN : digitBytes(reply, at[6]!, at[7]!);
    const cut = Math.max(at[4]!, at[5]! - 6);
    this.timestampMs = at[4]! < 0 || Number.isNaN(digitBytes(reply, cut, at[5]!))
      ? NaN
      : digitBytes(reply, at[4]!, cut);
  }

  /** Where the four numbers are, given the `n` dots in {@link #dots} of a subject `length` long. */
  #ranges(n: number, length: number): Int32Array {
    const dots = this.#dots;
    const at = this.#at;
    // Tokens: n + 1. v2 (11 or 12 tokens) has its numbers two tokens later than v1.
    const first = n + 1 >= 11 ? 7 : 5;
    for (let k = 0; k < 4; k++) {
      const i = first + k;
      // Token i (0-based; i >= 5) runs from the dot before it to the next dot or the end.
      at[2 * k] = i > n ? -1 : dots[i - 1]! + 1;
      at[2 * k + 1] = i > n ? -1 : i === n ? length : dots[i]!;
    }
    return at;
  }
}

const DOT = 0x2e;

/** The decimal digits of bytes `b` from `from` to `to` as a number; `NaN` if one is not a digit, 0 if none. */
function digitBytes(b: Uint8Array, from: number, to: number): number {
  let v = 0;
  for (let j = from; j < to; j++) {
    const d = b[j]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/** The decimal digits of `s` from `from` to `to` as a number; `NaN` if one is not a digit, 0 if none. */
function digits(s: string, from: number, to: number): number {
  let v = 0;
  for (let j = from; j < to; j++) {
    const d = s.charCodeAt(j) - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

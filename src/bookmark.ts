/**
 * Revision bookmarks (rule 8): a bucket name and a KV revision, for one or
 * several buckets, and their compact text form `cfg:1234,users:99` (the
 * `KV-Bookmark` HTTP header). A KV revision is the same on every edge and in
 * every regional mirror, so a bookmark taken anywhere can be honoured
 * anywhere. Text from clients is bounded input: at most
 * {@link BOOKMARK_MAX_LENGTH} characters and {@link BOOKMARK_MAX_BUCKETS}
 * buckets, revisions positive safe integers.
 *
 * @module
 */
import { BookmarkError } from "./errors.ts";
import { bucketProblem } from "./keys.ts";

/**
 * Longest bookmark text accepted by {@link Bookmark.parse}, in characters.
 *
 * @example
 * ```ts
 * import { Bookmark, BOOKMARK_MAX_LENGTH } from "./bookmark.ts";
 * const text = "users:1";
 * if (text.length <= BOOKMARK_MAX_LENGTH) console.log(Bookmark.parse(text).revision("users")); // 1
 * ```
 */
export const BOOKMARK_MAX_LENGTH = 1024;
/**
 * Most buckets one bookmark may name.
 *
 * @example
 * ```ts
 * import { Bookmark, BOOKMARK_MAX_BUCKETS } from "./bookmark.ts";
 * console.log(Bookmark.parse("a:1,b:2").buckets().length <= BOOKMARK_MAX_BUCKETS); // true
 * ```
 */
export const BOOKMARK_MAX_BUCKETS = 16;

const REVISION = /^[1-9][0-9]{0,15}$/;

/**
 * An immutable set of (bucket, revision) pairs: "what I wrote or read was at
 * least at this revision". Pass it back as `atLeast` to read no older than it
 * on any edge, in any region.
 *
 * @example
 * ```ts
 * import { Bookmark } from "./bookmark.ts";
 * const b = Bookmark.of("users", 99).with("cfg", 1234);
 * console.log(b.toString()); // "cfg:1234,users:99"
 * console.log(Bookmark.parse("cfg:1234,users:99").revision("users")); // 99
 * ```
 */
export class Bookmark {
  /** Bucket → revision, sorted by bucket name. */
  readonly #revs: ReadonlyMap<string, number>;
  #text: string | undefined;

  private constructor(revs: Map<string, number>) {
    this.#revs = new Map([...revs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** The empty bookmark: requires nothing. */
  static readonly EMPTY: Bookmark = new Bookmark(new Map());

  /**
   * A bookmark of one bucket at `revision` (a write's return value). A
   * revision of 0 names nothing (the empty bookmark).
   *
   * @example
   * ```ts
   * import { Bookmark } from "./bookmark.ts";
   * console.log(String(Bookmark.of("users", 42))); // "users:42"
   * ```
   */
  static of(bucket: string, revision: number): Bookmark {
    return Bookmark.EMPTY.with(bucket, revision);
  }

  /**
   * Parses the text form `bucket:revision[,bucket:revision…]` (spaces around
   * items allowed; an empty text is the empty bookmark). Throws a
   * {@link BookmarkError} with code `BAD_BOOKMARK` for anything else: too long,
   * too many buckets, a bad bucket name, a revision that is not a positive
   * integer below 2^53, or a bucket named twice.
   *
   * @example
   * ```ts
   * import { Bookmark } from "./bookmark.ts";
   * console.log(Bookmark.parse(" users:7 , cfg:3 ").toString()); // "cfg:3,users:7"
   * ```
   */
  static parse(text: string): Bookmark {
    const bad = (why: string) =>
      new BookmarkError("BAD_BOOKMARK", `Cannot read bookmark: ${why}`, {
        bucket: "",
        revision: 0,
      });
    if (typeof text !== "string") throw bad("not a string");
    if (text.length > BOOKMARK_MAX_LENGTH) {
      throw bad(`longer than ${BOOKMARK_MAX_LENGTH} characters`);
    }
    const revs = new Map<string, number>();
    if (text.trim() === "") return Bookmark.EMPTY;
    const items = text.split(",");
    if (items.length > BOOKMARK_MAX_BUCKETS) {
      throw bad(`names more than ${BOOKMARK_MAX_BUCKETS} buckets`);
    }
    for (const raw of items) {
      const item = raw.trim();
      const colon = item.lastIndexOf(":");
      if (colon <= 0) throw bad('each item must be "bucket:revision"');
      const bucket = item.slice(0, colon);
      const rev = item.slice(colon + 1);
      if (bucketProblem(bucket) !== undefined) throw bad("a bucket name is invalid");
      if (!REVISION.test(rev) || !Number.isSafeInteger(Number(rev))) {
        throw bad("a revision must be a positive integer below 2^53");
      }
      if (revs.has(bucket)) throw bad("a bucket is named twice");
      revs.set(bucket, Number(rev));
    }
    return new Bookmark(revs);
  }

  /** The revision named for `bucket`, 0 if none. */
  revision(bucket: string): number {
    return this.#revs.get(bucket) ?? 0;
  }

  /** The buckets named, sorted. */
  buckets(): string[] {
    return [...this.#revs.keys()];
  }

  /** Whether it names no bucket. */
  get isEmpty(): boolean {
    return this.#revs.size === 0;
  }

  /**
   * This bookmark with `bucket` at least at `revision` (the higher of the two
   * revisions is kept). Throws a `RangeError` for a revision that is not a
   * non-negative safe integer, a `TypeError` for a bad bucket name.
   */
  with(bucket: string, revision: number): Bookmark {
    if (!Number.isSafeInteger(revision) || revision < 0) {
      throw new RangeError(
        `Cannot build bookmark: revision must be a non-negative integer, got ${revision}`,
      );
    }
    const problem = bucketProblem(bucket);
    if (problem !== undefined) throw new TypeError(`Cannot build bookmark: ${problem}`);
    if (revision === 0 || this.revision(bucket) >= revision) return this;
    return new Bookmark(new Map(this.#revs).set(bucket, revision));
  }

  /** The union of two bookmarks, each bucket at the higher revision. */
  merge(other: Bookmark): Bookmark {
    if (other.isEmpty) return this;
    if (this.isEmpty) return other;
    return [...other.#revs].reduce((out: Bookmark, [b, r]) => out.with(b, r), this);
  }

  /** Whether this bookmark requires nothing `other` does not also reach. */
  coveredBy(other: Bookmark): boolean {
    for (const [b, r] of this.#revs) if (other.revision(b) < r) return false;
    return true;
  }

  /** The text form, buckets sorted: `cfg:1234,users:99` (empty for the empty bookmark). */
  toString(): string {
    return this.#text ??= [...this.#revs].map(([b, r]) => `${b}:${r}`).join(",");
  }

  /** The text form, for `JSON.stringify`. */
  toJSON(): string {
    return this.toString();
  }
}

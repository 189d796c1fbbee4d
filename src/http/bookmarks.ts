/**
 * Bookmarks over HTTP (rule 8): the `KV-Bookmark` request header (or, opt-in,
 * a cookie) a read honours, and the `KV-Bookmark` every answer of a key
 * carries, so that a client passing on the latest one it saw reads its own
 * writes, and never goes back in time, across edges and regions.
 *
 * @module
 */
import { Bookmark } from "../bookmark.ts";
import { BookmarkError } from "../errors.ts";
import { HttpProblem } from "./problem.ts";
import type { ServedBucket } from "./served_bucket.ts";

/** The request and response header of a bookmark (`cfg:1234,users:99`). */
export const BOOKMARK_HEADER = "kv-bookmark";

/** Reads and writes the bookmarks of requests and answers; one per app. */
export class HttpBookmarks {
  /** The cookie honoured and set as well, if any. */
  readonly cookie: string | undefined;
  readonly #cookiePrefix: string;
  readonly #answers = new WeakMap<ServedBucket, Bookmark>();

  /** `cookie`: the name of the browser cookie to honour and set (off when omitted). */
  constructor(cookie?: string) {
    this.cookie = cookie;
    this.#cookiePrefix = cookie === undefined ? "" : `${cookie}=`;
  }

  /**
   * The bookmark a request carries: its `KV-Bookmark` header, else (when on)
   * its cookie; empty if none. A malformed one is a 400 `bad_bookmark`.
   */
  of(request: Request): Bookmark {
    return this.ofHeader(request.headers.get(BOOKMARK_HEADER), request);
  }

  /** {@link of} when the request's `KV-Bookmark` header (`text`) was read already. */
  ofHeader(text: string | null, request: Request): Bookmark {
    if (text === null && this.cookie !== undefined) text = this.#fromCookie(request);
    if (text === null || text === "") return Bookmark.EMPTY;
    try {
      return Bookmark.parse(text);
    } catch (err) {
      if (err instanceof BookmarkError) {
        throw new HttpProblem("bad_bookmark", err.message.replace(/^Cannot [^:]*: /, ""), {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * The bookmark of an answer about bucket `b`: what the request carried,
   * with `b` at least at what its cache has applied and at `revision` (the
   * revision read or written).
   */
  answer(b: ServedBucket, incoming: Bookmark, revision: number): Bookmark {
    // Clients see the bucket by its served name, which may differ from its KV name.
    const rev = Math.max(b.cache.bookmark().revision(b.cache.bucket), revision);
    if (!incoming.isEmpty) return incoming.with(b.name, rev);
    // The common answer (no bookmark in the request) is built once per revision.
    let memo = this.#answers.get(b);
    if (memo === undefined || memo.revision(b.name) !== rev) {
      memo = Bookmark.of(b.name, rev);
      this.#answers.set(b, memo);
    }
    return memo;
  }

  /** The headers of an answer's bookmark as a record (for a problem response). */
  record(incoming: Bookmark, answer: Bookmark): Record<string, string> {
    if (answer.isEmpty) return {};
    const out: Record<string, string> = { [BOOKMARK_HEADER]: answer.toString() };
    const cookie = this.setCookie(incoming, answer);
    if (cookie !== undefined) out["set-cookie"] = cookie;
    return out;
  }

  /** The `Set-Cookie` value when the cookie is on and the answer moves it forward. */
  setCookie(incoming: Bookmark, answer: Bookmark): string | undefined {
    if (this.cookie === undefined || answer.coveredBy(incoming)) return undefined;
    // ',' is not a cookie-octet (RFC 6265): the value is percent-encoded.
    return `${this.#cookiePrefix}${
      encodeURIComponent(answer.toString())
    }; Path=/; SameSite=Lax; HttpOnly`;
  }

  #fromCookie(request: Request): string | null {
    const header = request.headers.get("cookie");
    if (header === null) return null;
    for (const part of header.split(";")) {
      const p = part.trim();
      if (!p.startsWith(this.#cookiePrefix)) continue;
      try {
        return decodeURIComponent(p.slice(this.#cookiePrefix.length));
      } catch {
        throw new HttpProblem("bad_bookmark", "the bookmark cookie is not percent-encoded text");
      }
    }
    return null;
  }
}

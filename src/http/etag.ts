/**
 * Entity tags: a value's ETag is its KV revision, `"<revision>"`. Parsing of
 * `If-Match` / `If-None-Match` lists (RFC 9110 §13.1).
 *
 * These are plain functions rather than a middleware because the GET hit path
 * is the hot path: the handler already holds the revision and answers 304
 * itself, with no response to build and throw away.
 *
 * @module
 */
import { HttpProblem } from "./problem.ts";

/**
 * The ETag of a revision.
 *
 * @example
 * ```ts
 * import { formatEtag } from "./etag.ts";
 * console.log(formatEtag(7)); // "\"7\""
 * ```
 */
export function formatEtag(revision: number): string {
  return '"' + revision + '"';
}

/** One entity tag of a list. */
export interface EntityTag {
  /** `W/` prefix present. */
  weak: boolean;
  /** The opaque tag without quotes. */
  tag: string;
}

/**
 * Parses an entity-tag list (`*`, or `"a", W/"b"`). Returns `"*"` for the
 * wildcard and `undefined` when the header is malformed.
 *
 * @example
 * ```ts
 * import { parseEntityTags } from "./etag.ts";
 * console.log(parseEntityTags('"3", W/"4"')); // [{weak:false,tag:"3"},{weak:true,tag:"4"}]
 * ```
 */
export function parseEntityTags(header: string): "*" | EntityTag[] | undefined {
  const s = header.trim();
  if (s === "*") return "*";
  const tags: EntityTag[] = [];
  let i = 0;
  const n = s.length;
  while (i < n) {
    const ch = s.charCodeAt(i);
    if (ch === 0x20 || ch === 0x09 || ch === 0x2c) { // space, tab, comma
      i++;
      continue;
    }
    let weak = false;
    if (s.startsWith("W/", i)) {
      weak = true;
      i += 2;
    }
    if (s.charCodeAt(i) !== 0x22) return undefined; // must open with a quote
    const end = s.indexOf('"', i + 1);
    if (end === -1) return undefined;
    tags.push({ weak, tag: s.slice(i + 1, end) });
    i = end + 1;
    // After a tag only whitespace and a comma may follow.
    while (i < n && (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x09)) i++;
    if (i < n && s.charCodeAt(i) !== 0x2c) return undefined;
  }
  return tags;
}

/**
 * Whether `If-None-Match` matches the current `etag` (weak comparison, so
 * `W/"7"` matches `"7"`). A malformed header never matches.
 *
 * @example
 * ```ts
 * import { ifNoneMatchHits } from "./etag.ts";
 * console.log(ifNoneMatchHits('W/"7"', '"7"')); // true
 * ```
 */
export function ifNoneMatchHits(header: string, etag: string): boolean {
  if (header === etag) return true; // the common case: a client echoing our ETag
  const tags = parseEntityTags(header);
  if (tags === undefined) return false;
  if (tags === "*") return true;
  const opaque = etag.slice(1, -1);
  for (const t of tags) if (t.tag === opaque) return true;
  return false;
}

/** What an `If-Match` header asks for. */
export type IfMatch =
  /** `*`: the key must exist. */
  | { any: true }
  /** The key must be at one of these revisions (empty: can never match). */
  | { any: false; revisions: number[] };

/**
 * Parses `If-Match` for a compare-and-set. Strong comparison: weak tags and
 * tags that are not revisions can never match, so they are dropped (an empty
 * list means "412"). Throws a `bad_request` problem for a malformed header.
 *
 * @example
 * ```ts
 * import { parseIfMatch } from "./etag.ts";
 * console.log(parseIfMatch('"5"')); // { any: false, revisions: [5] }
 * ```
 */
export function parseIfMatch(header: string): IfMatch {
  const tags = parseEntityTags(header);
  if (tags === undefined) {
    throw new HttpProblem("bad_request", "If-Match is not a valid entity-tag list");
  }
  if (tags === "*") return { any: true };
  const revisions: number[] = [];
  for (const t of tags) {
    if (t.weak || !/^[1-9][0-9]{0,15}$/.test(t.tag)) continue;
    const r = Number(t.tag);
    if (Number.isSafeInteger(r)) revisions.push(r);
  }
  return { any: false, revisions };
}

/**
 * A served bucket with everything its requests need pre-resolved: the
 * writer (or none), the codec, the content type, and the response parts of
 * each value at its revision ({@link HitParts}: body, ETag, Last-Modified and
 * the last header record), so that a hit builds its `Response` from ready
 * parts.
 *
 * @module
 */
import { isJsonCodec, jsonCodec } from "../codec.ts";
import { jsonDepth, stringifyJson } from "../json_text.ts";
import type { Cache, Codec, Entry, ReadonlyCache } from "../types.ts";
import type { AppBucketOptions } from "./app_options.ts";
import { formatEtag } from "./etag.ts";
import { HttpProblem } from "./problem.ts";

const JSON_CODEC: Codec<unknown> = jsonCodec<unknown>();

/**
 * How many template responses a bucket keeps (`entry_response.ts`): those of
 * the values read last. A template holds about 1 KB.
 *
 * @example
 * ```ts
 * import { TEMPLATES_PER_BUCKET } from "./served_bucket.ts";
 * console.log(TEMPLATES_PER_BUCKET); // 1024
 * ```
 */
export const TEMPLATES_PER_BUCKET = 1024;

/**
 * What the response to a read of one value at one revision is made of, built
 * on the first read of that revision and reused by every later one. A value
 * is a shared object of the local store until it changes, so the parts are
 * kept by the value's identity and checked against the entry's revision and
 * creation time: a new revision (even of the same object) never meets the
 * parts of an older one.
 *
 * @example
 * ```ts ignore
 * const parts = servedBucket.parts(await cache.getEntry("user.1"));
 * console.log(parts.etag, parts.lastModified, parts.body);
 * ```
 */
export interface HitParts {
  /** The revision the parts describe. */
  readonly revision: number;
  /** Whether the parts are kept for the next reads (an object value's are; a primitive's are not). */
  readonly kept: boolean;
  /** Its creation time, epoch ms (the source of `lastModified`). */
  readonly createdMs: number;
  /** The response body: JSON text, or the codec's bytes. */
  readonly body: string | Uint8Array;
  /** `ETag`. */
  readonly etag: string;
  /** `Last-Modified`. */
  readonly lastModified: string;
  /**
   * A 200 of these parts to copy (`entry_response.ts`), while the values it
   * was built with (`x-cache`, `cache-control`, `kv-bookmark`) stay the same;
   * kept for the last values read only.
   */
  template: Response | undefined;
  /** The `x-cache` of `template`. */
  templateSource: string;
  /** The `cache-control` of `template`. */
  templateCacheControl: string;
  /** The `kv-bookmark` of `template` ("" for none). */
  templateBookmark: string;
  /** Where `template` is in the bucket's ring of templates. */
  templateSlot: number;
}

/** A served bucket with everything its requests need pre-resolved. */
export class ServedBucket {
  readonly name: string;
  readonly cache: ReadonlyCache<unknown>;
  readonly writer: Cache<unknown> | undefined;
  readonly codec: Codec<unknown>;
  readonly isJson: boolean;
  readonly contentType: string;
  readonly maxAgeMs: number;
  // Values are shared objects held by the local store: their response parts
  // are kept by identity (and go with the value when the store drops it).
  readonly #parts = new WeakMap<object, HitParts>();
  // The parts holding a template, oldest overwritten first: templates are
  // big (~1 KB), so only the values read last keep one.
  readonly #templated: (HitParts | undefined)[] = new Array(TEMPLATES_PER_BUCKET);
  #nextSlot = 0;
  #ttlCheckedAt = -Infinity;
  #bucketTtlMs = 0;
  #maxTtlMs = 0;

  constructor(name: string, o: AppBucketOptions) {
    this.name = name;
    this.cache = o.cache;
    const writable = typeof (o.cache as Partial<Cache<unknown>>).set === "function";
    this.writer = writable && !o.readOnly ? (o.cache as Cache<unknown>) : undefined;
    this.codec = o.codec ?? JSON_CODEC;
    this.isJson = o.codec === undefined || isJsonCodec(o.codec);
    this.contentType = this.isJson
      ? "application/json"
      : (o.codec?.contentType ?? "application/octet-stream");
    this.maxAgeMs = o.maxAgeMs ?? 0;
  }

  /**
   * The response parts of an entry's value at its revision: those kept for
   * the value if they are of this revision, else new ones (kept for an
   * object value; a primitive's are rebuilt per read, they are cheap).
   */
  parts(e: Entry<unknown>): HitParts {
    const value = e.value;
    if (typeof value !== "object" || value === null) return this.#newParts(e, false);
    const kept = this.#parts.get(value);
    if (kept !== undefined && kept.revision === e.revision && kept.createdMs === e.createdMs) {
      return kept;
    }
    const made = this.#newParts(e, true);
    this.#parts.set(value, made);
    return made;
  }

  #newParts(e: Entry<unknown>, kept: boolean): HitParts {
    return {
      revision: e.revision,
      kept,
      createdMs: e.createdMs,
      body: this.body(e.value),
      etag: formatEtag(e.revision),
      lastModified: new Date(e.createdMs).toUTCString(),
      template: undefined,
      templateSource: "",
      templateCacheControl: "",
      templateBookmark: "",
      templateSlot: -1,
    };
  }

  /** Keeps `template` (a 200 built from `parts` with these header values) for the next reads. */
  keepTemplate(
    parts: HitParts,
    template: Response,
    source: string,
    cacheControl: string,
    bookmark: string,
  ): void {
    if (parts.templateSlot < 0) {
      const slot = this.#nextSlot;
      this.#nextSlot = (slot + 1) % TEMPLATES_PER_BUCKET;
      const old = this.#templated[slot];
      if (old !== undefined) {
        old.template = undefined;
        old.templateSlot = -1;
      }
      this.#templated[slot] = parts;
      parts.templateSlot = slot;
    }
    parts.template = template;
    parts.templateSource = source;
    parts.templateCacheControl = cacheControl;
    parts.templateBookmark = bookmark;
  }

  /** The response body of a value (not kept: see {@link parts}). */
  body(value: unknown): string | Uint8Array {
    if (!this.isJson) return this.codec.encode(value);
    if (typeof value !== "object" || value === null) return JSON.stringify(value);
    return stringifyJson(value);
  }

  /** A value inside a JSON document (SSE, history): itself for JSON, base64 otherwise. */
  jsonValue(value: unknown): { value: unknown } | { valueBase64: string } {
    if (this.isJson) return { value };
    return { valueBase64: toBase64(this.codec.encode(value)) };
  }

  /** Parses a request body into a value, or throws `bad_request` (or `too_deep`). */
  decode(bytes: Uint8Array, maxJsonDepth: number): unknown {
    if (this.isJson && jsonDepth(bytes, maxJsonDepth) > maxJsonDepth) {
      throw new HttpProblem(
        "too_deep",
        `the JSON body nests deeper than ${maxJsonDepth} levels (the limit)`,
        { extensions: { maxDepth: maxJsonDepth } },
      );
    }
    try {
      return this.codec.decode(bytes);
    } catch (err) {
      throw new HttpProblem(
        "bad_request",
        this.isJson
          ? "the body is not valid JSON"
          : "the body cannot be decoded by the bucket's codec",
        { cause: err },
      );
    }
  }

  /** `Cache-Control` of an entry read now. */
  cacheControl(e: Entry<unknown>): string {
    if (this.maxAgeMs <= 0 || e.stale) return "no-cache";
    const now = Date.now();
    if (now - this.#ttlCheckedAt > 1000) {
      // status() builds an object; once a second is plenty for TTL settings.
      const s = this.cache.status();
      this.#bucketTtlMs = s.bucketTtlMs;
      this.#maxTtlMs = s.maxTtlMs;
      this.#ttlCheckedAt = now;
    }
    let ms = this.maxAgeMs;
    if (this.#bucketTtlMs > 0) ms = Math.min(ms, e.createdMs + this.#bucketTtlMs - now);
    if (this.#maxTtlMs > 0) ms = Math.min(ms, this.#maxTtlMs);
    const s = Math.floor(ms / 1000);
    return s > 0 ? `max-age=${s}` : "no-cache";
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

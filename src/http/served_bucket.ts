/**
 * A served bucket with everything its requests need pre-resolved: the
 * writer (or none), the codec, the content type, and small per-bucket memos
 * of a hot key's JSON, ETag and Last-Modified.
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

/** A served bucket with everything its requests need pre-resolved. */
export class ServedBucket {
  readonly name: string;
  readonly cache: ReadonlyCache<unknown>;
  readonly writer: Cache<unknown> | undefined;
  readonly codec: Codec<unknown>;
  readonly isJson: boolean;
  readonly contentType: string;
  readonly maxAgeMs: number;
  // Values are shared objects held by the local store; their JSON is kept by
  // identity so a hot key is stringified once, not once per request.
  readonly #jsonOf = new WeakMap<object, string>();
  #lastCreatedMs = NaN;
  #lastModified = "";
  #lastRevision = NaN;
  #lastEtag = "";
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

  /** The response body of a value. */
  body(value: unknown): string | Uint8Array {
    if (!this.isJson) return this.codec.encode(value);
    if (typeof value !== "object" || value === null) return JSON.stringify(value);
    let s = this.#jsonOf.get(value);
    if (s === undefined) {
      s = stringifyJson(value);
      this.#jsonOf.set(value, s);
    }
    return s;
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

  /** The ETag of a revision (the last one is kept: a hot key's is built once). */
  etag(revision: number): string {
    if (revision !== this.#lastRevision) {
      this.#lastRevision = revision;
      this.#lastEtag = formatEtag(revision);
    }
    return this.#lastEtag;
  }

  lastModified(createdMs: number): string {
    if (createdMs !== this.#lastCreatedMs) {
      this.#lastCreatedMs = createdMs;
      this.#lastModified = new Date(createdMs).toUTCString();
    }
    return this.#lastModified;
  }

  cacheControl(e: Entry<unknown>, now: number): string {
    if (this.maxAgeMs <= 0 || e.stale) return "no-cache";
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

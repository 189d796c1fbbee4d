/**
 * The default value codec: JSON in UTF-8.
 *
 * @module
 */
import type { Codec } from "./types.ts";
import { stringifyJson } from "./json_text.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Marks the codecs {@link jsonCodec} returns, so that consumers can tell JSON apart. */
const JSON_CODEC = Symbol.for("kvedge.jsonCodec");

/**
 * Whether `codec` is one returned by {@link jsonCodec} (its values are JSON
 * documents, so the HTTP facade embeds them in SSE and history as JSON).
 *
 * @example
 * ```ts
 * import { isJsonCodec, jsonCodec } from "./codec.ts";
 * console.log(isJsonCodec(jsonCodec())); // true
 * ```
 */
export function isJsonCodec(codec: Codec<unknown> | undefined): boolean {
  return codec !== undefined && (codec as { [JSON_CODEC]?: boolean })[JSON_CODEC] === true;
}

/**
 * Returns the JSON codec (the default of every cache).
 *
 * @example
 * ```ts
 * import { jsonCodec } from "./codec.ts";
 * const c = jsonCodec<{ n: number }>();
 * console.log(c.decode(c.encode({ n: 1 })).n); // 1
 * ```
 */
export function jsonCodec<T>(): Codec<T> {
  const codec: Codec<T> = {
    contentType: "application/json",
    encode(value: T): Uint8Array {
      // Any depth: a value read from KV (another client wrote it) may nest
      // deeper than V8's recursive serialiser survives.
      const text = stringifyJson(value);
      if (text === undefined) throw new TypeError("Cannot encode: value is not JSON-serialisable");
      return encoder.encode(text);
    },
    decode(bytes: Uint8Array): T {
      return JSON.parse(decoder.decode(bytes)) as T;
    },
  };
  Object.defineProperty(codec, JSON_CODEC, { value: true });
  return codec;
}

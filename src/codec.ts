/**
 * The default value codec: JSON in UTF-8.
 *
 * @module
 */
import type { Codec } from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

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
  return {
    contentType: "application/json",
    encode(value: T): Uint8Array {
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError("Cannot encode: value is not JSON-serialisable");
      return encoder.encode(text);
    },
    decode(bytes: Uint8Array): T {
      return JSON.parse(decoder.decode(bytes)) as T;
    },
  };
}

/**
 * A record of `deno task seed` as the readers yield it: a key and a value, or
 * the line it came from and what was wrong with it; and the error that ends
 * a read.
 *
 * @module
 */

/** Input formats `seed` reads. */
export type SeedFormat = "ndjson" | "json" | "csv";

/**
 * One input record: a key and its value, or the reason the record is bad.
 * `line` is the 1-based line the record starts on (for a JSON object input,
 * the 1-based position of the entry; for generated records, their index).
 */
export interface SeedRecord {
  /** Where the record starts, for error reports and `--from-line`. */
  line: number;
  /** The key (unchecked: the loop validates it). */
  key: string;
  /** The value, to be stored JSON-encoded (unless `bytes` is given). */
  value: unknown;
  /** Pre-encoded value bytes; when set, `value` is not encoded again. */
  bytes: Uint8Array | undefined;
  /** Why the record cannot be used; `undefined` for a good record. */
  problem: string | undefined;
}

/**
 * A failure that makes the whole input unusable (not one bad line).
 *
 * @example
 * ```ts
 * import { SeedInputError } from "./input.ts";
 * throw new SeedInputError("the input is not valid JSON");
 * ```
 */
export class SeedInputError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "SeedInputError";
  }
}

/** A record the input got wrong: `problem` says how, at `line`. */
export function bad(line: number, problem: string, key = ""): SeedRecord {
  return { line, key, value: undefined, bytes: undefined, problem };
}

/** A valid record: `key` and its `value`, read at `line`. */
export function good(line: number, key: string, value: unknown): SeedRecord {
  return { line, key, value, bytes: undefined, problem: undefined };
}

/**
 * The synthetic records of `deno task seed --generate N`: keys and values of
 * a chosen size, cheap enough that generating never limits the seeding rate.
 *
 * @module
 */
import type { SeedRecord } from "./record.ts";

/** Options of {@link generateRecords}. */
export interface GenerateOptions {
  /** How many records in total (indexes 1…count). */
  count: number;
  /** Key prefix: keys are `<prefix>.<index>`. Default `"gen"`. */
  prefix?: string;
  /** Size of each encoded JSON value in bytes (at least the fixed skeleton). Default 64. */
  valueSize?: number;
  /** First index to produce (for resuming). Default 1. */
  fromLine?: number;
}

const POOL_SIZE = 1 << 16;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** Deterministic filler text (xorshift32 from a fixed seed), so runs are reproducible. */
function fillerPool(length: number): string {
  let x = 0x9e3779b9 | 0;
  const chars = new Array<string>(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    chars[i] = ALPHABET[(x >>> 0) % ALPHABET.length]!;
  }
  return chars.join("");
}

/**
 * Produces `count` deterministic synthetic records for demos and benchmarks:
 * key `<prefix>.<i>`, value the JSON object `{"n":i,"pad":"…"}` padded to
 * `valueSize` bytes. The same options always give the same records.
 *
 * @example
 * ```ts
 * import { generateRecords } from "./generate.ts";
 * for (const batch of generateRecords({ count: 3, valueSize: 32 })) console.log(batch[0]!.key);
 * ```
 */
export function* generateRecords(options: GenerateOptions): Generator<SeedRecord[]> {
  const prefix = options.prefix ?? "gen";
  const size = options.valueSize ?? 64;
  const encoder = new TextEncoder();
  const pool = fillerPool(POOL_SIZE + Math.max(0, size));
  let batch: SeedRecord[] = [];
  for (let i = Math.max(1, options.fromLine ?? 1); i <= options.count; i++) {
    const head = `{"n":${i},"pad":"`;
    const padLen = Math.max(0, size - head.length - 2);
    const offset = Math.imul(i, 2654435761 | 0) >>> 16;
    const json = head + pool.slice(offset, offset + padLen) + '"}';
    batch.push({
      line: i,
      key: `${prefix}.${i}`,
      value: undefined,
      bytes: encoder.encode(json),
      problem: undefined,
    });
    if (batch.length === 1024) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

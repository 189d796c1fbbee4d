/**
 * Record readers of `deno task seed`: NDJSON, a JSON object, CSV and the
 * synthetic generator. Each yields batches of {@link SeedRecord}s (one batch
 * per input chunk) so the seeding loop pays no await per record.
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
 * import { SeedInputError } from "./_seed_input.ts";
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

/** Options of {@link readRecords}. */
export interface ReadRecordsOptions {
  /** Input format; `"auto"` sniffs the first line. Default `"auto"`. */
  format?: SeedFormat | "auto";
  /** CSV column holding the key. Required for CSV. */
  keyColumn?: string;
  /** Records starting before this 1-based line are skipped unparsed (CSV's header is always read). Default 1. */
  fromLine?: number;
  /** Called with the byte count of every chunk read, for progress. */
  onBytes?: (bytes: number) => void;
  /**
   * Longest NDJSON line or CSV record, in UTF-16 code units (bytes, for ASCII
   * text). A longer NDJSON line is a bad record, skipped without being held in
   * memory; a longer CSV record (a quote never closed, usually) stops the
   * input. Default {@link DEFAULT_MAX_LINE_CHARS}.
   */
  maxLineChars?: number;
}

/**
 * Default longest line: 64 Mi code units, room for a JSON-encoded value of
 * NATS's largest `max_payload` (64 MB) while refusing a runaway line long
 * before it costs gigabytes.
 */
export const DEFAULT_MAX_LINE_CHARS = 64 << 20;
/** Longest JSON object input (read whole before parsing), in UTF-16 code units. */
export const MAX_JSON_OBJECT_CHARS = 256 << 20;

function bad(line: number, problem: string, key = ""): SeedRecord {
  return { line, key, value: undefined, bytes: undefined, problem };
}

function good(line: number, key: string, value: unknown): SeedRecord {
  return { line, key, value, bytes: undefined, problem: undefined };
}

/**
 * Guesses the format from the first non-blank line: a JSON object with a
 * `"key"` property is NDJSON, any other JSON start is a JSON object, the rest
 * is CSV.
 *
 * @example
 * ```ts
 * import { sniffFormat } from "./_seed_input.ts";
 * console.log(sniffFormat('{"key":"a","value":1}\n')); // "ndjson"
 * ```
 */
export function sniffFormat(head: string): SeedFormat {
  const first = head.split("\n").find((l) => l.trim() !== "")?.trim() ?? "";
  if (first.startsWith("{")) {
    try {
      const obj = JSON.parse(first);
      if (obj && typeof obj === "object" && "key" in obj) return "ndjson";
    } catch {
      // Not a whole object on one line: a pretty-printed JSON object.
    }
    return "json";
  }
  return "csv";
}

/**
 * Reads records from a byte stream in the given (or sniffed) format.
 *
 * @example
 * ```ts
 * import { readRecords } from "./_seed_input.ts";
 * const input = new Blob(['{"key":"a","value":1}\n']).stream();
 * for await (const batch of readRecords(input, { format: "ndjson" })) console.log(batch.length);
 * ```
 */
export async function* readRecords(
  stream: ReadableStream<Uint8Array>,
  options: ReadRecordsOptions = {},
): AsyncGenerator<SeedRecord[]> {
  const fromLine = options.fromLine ?? 1;
  const maxLine = options.maxLineChars ?? DEFAULT_MAX_LINE_CHARS;
  let format = options.format ?? "auto";
  // Strict: a byte sequence that is not UTF-8 stops the input with its line,
  // rather than becoming U+FFFD in a stored value.
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const reader = stream.getReader();
  let pending = "";
  let jsonText = "";
  let lineNo = 0;
  let physicalLine = 1; // line of the next byte read
  let skipping = false; // discarding the rest of an over-long NDJSON line
  let csv: CsvReader | undefined;
  /** NDJSON: complete lines of `pending + text` into `out`, over-long lines as bad records. */
  const ndjson = (text: string, done: boolean, out: SeedRecord[]) => {
    if (skipping) {
      const nl = text.indexOf("\n");
      if (nl === -1) return;
      skipping = false;
      text = text.slice(nl + 1);
    }
    lineNo = splitNdjson(pending + text, done, lineNo, fromLine, maxLine, out, (rest) => {
      pending = rest;
    });
    if (pending.length > maxLine) {
      lineNo++;
      if (lineNo >= fromLine) out.push(bad(lineNo, `line longer than ${maxLine} characters`));
      pending = "";
      skipping = true;
    }
  };
  try {
    while (true) {
      const { done, value } = await reader.read();
      let text: string;
      try {
        text = done ? decoder.decode() : decoder.decode(value, { stream: true });
      } catch {
        const at = done ? physicalLine : physicalLine + countNewlines(value!, firstInvalid(value!));
        throw new SeedInputError(`the input is not valid UTF-8 (line ${at})`);
      }
      if (!done) {
        physicalLine += countNewlines(value, value.length);
        options.onBytes?.(value.length);
      }
      if (format === "auto") {
        pending += text;
        if (!done && !pending.includes("\n") && pending.length < 1 << 20) continue;
        format = sniffFormat(pending);
        if (format === "csv" && options.keyColumn === undefined) {
          throw new SeedInputError(
            "the input looks like CSV; name its key column with --key-column (or pass --format)",
          );
        }
        const all = pending;
        pending = "";
        if (format === "json") jsonText = all;
        else if (format === "csv") {
          csv = new CsvReader(options.keyColumn!, fromLine, maxLine);
          const out: SeedRecord[] = [];
          csv.push(all, out);
          if (done) csv.end(out);
          if (out.length) yield out;
        } else {
          const out: SeedRecord[] = [];
          ndjson(all, done, out);
          if (out.length) yield out;
        }
      } else if (format === "json") {
        jsonText += text;
        if (jsonText.length > MAX_JSON_OBJECT_CHARS) {
          throw new SeedInputError(
            `a JSON object input is limited to ${MAX_JSON_OBJECT_CHARS} characters; use NDJSON`,
          );
        }
      } else if (format === "csv") {
        if (options.keyColumn === undefined) {
          throw new SeedInputError("CSV input needs --key-column NAME");
        }
        csv ??= new CsvReader(options.keyColumn, fromLine, maxLine);
        const out: SeedRecord[] = [];
        csv.push(text, out);
        if (done) csv.end(out);
        if (out.length) yield out;
      } else {
        const out: SeedRecord[] = [];
        ndjson(text, done, out);
        if (out.length) yield out;
      }
      if (done) break;
    }
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => {});
  }
  if (format === "json") yield* jsonObjectRecords(jsonText, fromLine);
}

/** Newlines among the first `end` bytes of `bytes`. */
function countNewlines(bytes: Uint8Array, end: number): number {
  let n = 0;
  for (let i = bytes.indexOf(10); i !== -1 && i < end; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Offset of the first byte of `bytes` that does not belong to a well-formed
 * UTF-8 sequence (continuation bytes at the very start are taken to finish a
 * sequence begun in the previous chunk). The decoder already said the chunk
 * is bad, so if no bad byte is found here the sequence began in the previous
 * chunk: 0.
 */
function firstInvalid(bytes: Uint8Array): number {
  let i = 0;
  while (i < 3 && i < bytes.length && (bytes[i]! & 0xc0) === 0x80) i++;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const len = b < 0x80
      ? 1
      : b >= 0xc2 && b < 0xe0
      ? 2
      : b >= 0xe0 && b < 0xf0
      ? 3
      : b >= 0xf0 && b < 0xf5
      ? 4
      : 0;
    if (len === 0) return i;
    if (i + 1 < bytes.length && len > 2) {
      // The second byte's range excludes overlong forms, surrogates and > U+10FFFF.
      const c = bytes[i + 1]!;
      const lo = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
      const hi = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
      if (c < lo || c > hi) return i;
    }
    for (let k = 1; k < len; k++) {
      if (i + k >= bytes.length) return 0; // cut by the chunk's end: not what failed
      if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    }
    i += len;
  }
  return 0;
}

/** Splits `text` into lines, parses complete ones into `out`, hands the unfinished tail to `keep`. */
function splitNdjson(
  text: string,
  done: boolean,
  lineNo: number,
  fromLine: number,
  maxLine: number,
  out: SeedRecord[],
  keep: (rest: string) => void,
): number {
  let start = 0;
  const parse = (end: number) => {
    if (end - start > maxLine) out.push(bad(lineNo, `line longer than ${maxLine} characters`));
    else parseNdjsonLine(text, start, end, lineNo, out);
  };
  while (true) {
    const nl = text.indexOf("\n", start);
    if (nl === -1) break;
    lineNo++;
    if (lineNo >= fromLine) parse(nl);
    start = nl + 1;
  }
  if (done) {
    if (start < text.length) {
      lineNo++;
      if (lineNo >= fromLine) parse(text.length);
    }
    keep("");
  } else {
    keep(text.slice(start));
  }
  return lineNo;
}

function parseNdjsonLine(
  text: string,
  start: number,
  end: number,
  line: number,
  out: SeedRecord[],
): void {
  if (end > start && text.charCodeAt(end - 1) === 13) end--; // CRLF
  const s = text.slice(start, end);
  if (s.trim() === "") return;
  let obj: unknown;
  try {
    obj = JSON.parse(s);
  } catch (err) {
    out.push(bad(line, `invalid JSON: ${(err as Error).message}`));
    return;
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    out.push(bad(line, 'expected an object like {"key": ..., "value": ...}'));
    return;
  }
  const rec = obj as { key?: unknown; value?: unknown };
  if (typeof rec.key !== "string") {
    out.push(bad(line, '"key" must be a string'));
    return;
  }
  if (rec.value === undefined) {
    out.push(bad(line, 'missing "value"', rec.key));
    return;
  }
  out.push(good(line, rec.key, rec.value));
}

function* jsonObjectRecords(text: string, fromLine: number): Generator<SeedRecord[]> {
  if (text.trim() === "") return;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new SeedInputError(`the input is not valid JSON: ${(err as Error).message}`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new SeedInputError("a JSON input must be one object mapping keys to values");
  }
  let batch: SeedRecord[] = [];
  let n = 0;
  for (const [key, value] of Object.entries(obj)) {
    n++;
    if (n < fromLine) continue;
    batch.push(good(n, key, value));
    if (batch.length === 1024) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/**
 * An RFC 4180 CSV reader fed text in chunks: quoted fields may hold commas,
 * `""` and newlines, and may span chunks. The first record is the header.
 */
class CsvReader {
  #keyColumn: string;
  #fromLine: number;
  #header: string[] | undefined;
  #keyIndex = -1;
  #fields: string[] = [];
  #field = "";
  #inQuotes = false;
  #quoteSeen = false; // a quote inside a quoted field: either "" or the closing quote
  #fieldStarted = false;
  #line = 1; // physical line of the current character
  #recordLine = 1; // line the current record started on
  #afterCr = false;
  #maxRecord: number;
  #recordChars = 0; // characters of the current record's finished fields

  constructor(keyColumn: string, fromLine: number, maxRecord: number) {
    this.#keyColumn = keyColumn;
    this.#fromLine = fromLine;
    this.#maxRecord = maxRecord;
  }

  push(text: string, out: SeedRecord[]): void {
    let i = 0;
    const n = text.length;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (this.#inQuotes) {
        if (this.#quoteSeen) {
          this.#quoteSeen = false;
          if (c === 34) {
            this.#field += '"';
            i++;
            continue;
          }
          this.#inQuotes = false; // the quote closed the field; handle c below
        } else if (c === 34) {
          this.#quoteSeen = true;
          i++;
          continue;
        } else {
          // Copy a run of ordinary quoted characters at once.
          let j = text.indexOf('"', i);
          if (j === -1) j = n;
          const run = text.slice(i, j);
          for (let k = 0; k < run.length; k++) if (run.charCodeAt(k) === 10) this.#line++;
          this.#field += run;
          i = j;
          continue;
        }
      }
      if (c === 44) { // ,
        this.#endField();
        this.#afterCr = false;
        i++;
      } else if (c === 10) { // \n
        if (!this.#afterCr) this.#endRecord(out);
        this.#afterCr = false;
        this.#line++;
        this.#recordLine = this.#line;
        i++;
      } else if (c === 13) { // \r
        this.#endRecord(out);
        this.#afterCr = true;
        i++;
      } else if (c === 34 && !this.#fieldStarted) {
        this.#inQuotes = true;
        this.#fieldStarted = true;
        this.#afterCr = false;
        i++;
      } else {
        // Copy a run of unquoted characters at once.
        let j = i;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === 44 || d === 10 || d === 13) break;
          j++;
        }
        this.#field += text.slice(i, j);
        this.#fieldStarted = true;
        this.#afterCr = false;
        i = j;
      }
    }
    if (this.#recordChars + this.#field.length > this.#maxRecord) {
      throw new SeedInputError(
        `the CSV record starting on line ${this.#recordLine} is longer than ${this.#maxRecord} ` +
          "characters (a quote never closed?)",
      );
    }
  }

  end(out: SeedRecord[]): void {
    if (this.#inQuotes && !this.#quoteSeen) {
      out.push(bad(this.#recordLine, "unterminated quoted field at end of input"));
      return;
    }
    this.#inQuotes = false;
    this.#quoteSeen = false;
    if (this.#fieldStarted || this.#fields.length > 0) this.#endRecord(out);
  }

  #endField(): void {
    this.#recordChars += this.#field.length + 1;
    this.#fields.push(this.#field);
    this.#field = "";
    this.#fieldStarted = false;
  }

  #endRecord(out: SeedRecord[]): void {
    const blank = this.#fields.length === 0 && !this.#fieldStarted;
    this.#endField();
    const fields = this.#fields;
    this.#fields = [];
    this.#recordChars = 0;
    const line = this.#recordLine;
    if (blank) return;
    if (this.#header === undefined) {
      this.#header = fields;
      this.#keyIndex = fields.indexOf(this.#keyColumn);
      if (this.#keyIndex === -1) {
        throw new SeedInputError(
          `--key-column ${JSON.stringify(this.#keyColumn)} is not in the CSV header (${
            fields.map((f) => JSON.stringify(f)).join(", ")
          })`,
        );
      }
      return;
    }
    if (line < this.#fromLine) return;
    const header = this.#header;
    if (fields.length !== header.length) {
      out.push(bad(line, `expected ${header.length} fields, got ${fields.length}`));
      return;
    }
    const value: Record<string, string> = {};
    for (let i = 0; i < header.length; i++) {
      if (i !== this.#keyIndex) value[header[i]!] = fields[i]!;
    }
    out.push(good(line, fields[this.#keyIndex]!, value));
  }
}

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
 * import { generateRecords } from "./_seed_input.ts";
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

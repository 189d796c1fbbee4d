/**
 * Record readers of `deno task seed`: NDJSON, a JSON object and CSV (the
 * CSV reader itself is in `csv.ts`, the synthetic generator in
 * `generate.ts`, the record in `record.ts`). Each yields batches
 * of {@link SeedRecord}s (one batch per input chunk) so the seeding loop pays
 * no await per record.
 *
 * @module
 */
import { bad, good, type SeedFormat, SeedInputError, type SeedRecord } from "./record.ts";
import { CsvReader } from "./csv.ts";

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

/**
 * Guesses the format from the first non-blank line: a JSON object with a
 * `"key"` property is NDJSON, any other JSON start is a JSON object, the rest
 * is CSV.
 *
 * @example
 * ```ts
 * import { sniffFormat } from "./input.ts";
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
 * import { readRecords } from "./input.ts";
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
  const utf8 = new StrictUtf8();
  const reader = stream.getReader();
  const lines = new LineRecords({ keyColumn: options.keyColumn, fromLine, maxLine });
  let head = ""; // the start of an "auto" input, until its format is known
  let jsonText = "";
  try {
    while (true) {
      const { done, value } = await reader.read();
      const text = utf8.decode(value);
      if (!done) options.onBytes?.(value.length);
      if (format === "auto") {
        head += text;
        if (!done && !head.includes("\n") && head.length < 1 << 20) continue;
        format = sniffFormat(head);
        if (format === "csv" && options.keyColumn === undefined) {
          throw new SeedInputError(
            "the input looks like CSV; name its key column with --key-column (or pass --format)",
          );
        }
        const all = head;
        head = "";
        if (format === "json") jsonText = all;
        else {
          const out = lines.push(format, all, done);
          if (out.length) yield out;
        }
      } else if (format === "json") {
        jsonText += text;
        if (jsonText.length > MAX_JSON_OBJECT_CHARS) {
          throw new SeedInputError(
            `a JSON object input is limited to ${MAX_JSON_OBJECT_CHARS} characters; use NDJSON`,
          );
        }
      } else {
        const out = lines.push(format, text, done);
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

/**
 * Strict UTF-8: a byte sequence that is not UTF-8 stops the input with its
 * line, rather than becoming U+FFFD in a stored value.
 */
class StrictUtf8 {
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  /** Line of the next byte read. */
  #physicalLine = 1;

  /** The text of the next chunk (`undefined`: the end of the input). */
  decode(value: Uint8Array | undefined): string {
    let text: string;
    try {
      text = value === undefined
        ? this.#decoder.decode()
        : this.#decoder.decode(value, { stream: true });
    } catch {
      const at = value === undefined
        ? this.#physicalLine
        : this.#physicalLine + countNewlines(value, firstInvalid(value));
      throw new SeedInputError(`the input is not valid UTF-8 (line ${at})`);
    }
    if (value !== undefined) this.#physicalLine += countNewlines(value, value.length);
    return text;
  }
}

/** The line formats, NDJSON and CSV: text in, the records of its complete lines out. */
class LineRecords {
  readonly #keyColumn: string | undefined;
  readonly #fromLine: number;
  readonly #maxLine: number;
  #csv: CsvReader | undefined;
  #pending = "";
  #lineNo = 0;
  /** Discarding the rest of an over-long NDJSON line. */
  #skipping = false;

  constructor(o: { keyColumn: string | undefined; fromLine: number; maxLine: number }) {
    this.#keyColumn = o.keyColumn;
    this.#fromLine = o.fromLine;
    this.#maxLine = o.maxLine;
  }

  /** The records `text` completes (`done`: it ends the input). */
  push(format: "ndjson" | "csv", text: string, done: boolean): SeedRecord[] {
    const out: SeedRecord[] = [];
    if (format === "ndjson") {
      this.#ndjson(text, done, out);
      return out;
    }
    if (this.#keyColumn === undefined) {
      throw new SeedInputError("CSV input needs --key-column NAME");
    }
    this.#csv ??= new CsvReader(this.#keyColumn, this.#fromLine, this.#maxLine);
    this.#csv.push(text, out);
    if (done) this.#csv.end(out);
    return out;
  }

  /** NDJSON: complete lines of `pending + text` into `out`, over-long lines as bad records. */
  #ndjson(text: string, done: boolean, out: SeedRecord[]): void {
    const maxLine = this.#maxLine;
    if (this.#skipping) {
      const nl = text.indexOf("\n");
      if (nl === -1) return;
      this.#skipping = false;
      text = text.slice(nl + 1);
    }
    this.#lineNo = splitNdjson(
      this.#pending + text,
      done,
      this.#lineNo,
      this.#fromLine,
      maxLine,
      out,
      (rest) => {
        this.#pending = rest;
      },
    );
    if (this.#pending.length > maxLine) {
      this.#lineNo++;
      if (this.#lineNo >= this.#fromLine) {
        out.push(bad(this.#lineNo, `line longer than ${maxLine} characters`));
      }
      this.#pending = "";
      this.#skipping = true;
    }
  }
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

/**
 * What the operator scripts write to the terminal: aligned tables and
 * columns, synchronous stdout/stderr lines, and how a value is shown
 * (printable text or base64, quoted names).
 *
 * @module
 */

/**
 * Lays rows out as a left-aligned table with a header row, columns separated
 * by two spaces, no trailing blanks.
 *
 * @example
 * ```ts
 * import { formatTable } from "./output.ts";
 * console.log(formatTable(["Key", "Revision"], [["a", "1"], ["bb", "12"]]));
 * ```
 */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/**
 * Lays out label/value pairs with right-aligned labels, as `nats kv info` does.
 *
 * @example
 * ```ts
 * import { formatColumns } from "./output.ts";
 * console.log(formatColumns([["Bucket Name", "demo"], ["History Kept", "5"]]));
 * ```
 */
export function formatColumns(rows: [string, string][]): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padStart(width)}: ${v}`).join("\n");
}

const encoder = new TextEncoder();

/**
 * Writes `text` and a newline to stdout, synchronously, so output is complete before an exit.
 *
 * @example
 * ```ts
 * import { println } from "./output.ts";
 * println("done");
 * ```
 */
export function println(text = ""): void {
  writeAllSync(Deno.stdout, encoder.encode(text + "\n"));
}

/**
 * Writes `text` and a newline to stderr, synchronously.
 *
 * @example
 * ```ts
 * import { eprintln } from "./output.ts";
 * eprintln("seed: line 3: invalid JSON");
 * ```
 */
export function eprintln(text: string): void {
  writeAllSync(Deno.stderr, encoder.encode(text + "\n"));
}

/**
 * Writes all of `bytes` to a synchronous writer (stdout/stderr); one `writeSync` may write less.
 *
 * @example
 * ```ts
 * import { writeAllSync } from "./output.ts";
 * writeAllSync(Deno.stdout, new TextEncoder().encode("raw bytes\n"));
 * ```
 */
export function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/**
 * Whether `bytes` are text worth printing as is: valid UTF-8 without control
 * characters other than tab, CR and LF. Anything else is shown as base64.
 *
 * @example
 * ```ts
 * import { isPrintable } from "./output.ts";
 * console.log(isPrintable(new TextEncoder().encode("héllo"))); // true
 * ```
 */
export function isPrintable(bytes: Uint8Array): boolean {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  // deno-lint-ignore no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text);
}

/**
 * Encodes bytes as standard base64.
 *
 * @example
 * ```ts
 * import { toBase64 } from "./output.ts";
 * console.log(toBase64(new Uint8Array([0, 1, 2, 255]))); // "AAEC/w=="
 * ```
 */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Quotes a user-supplied name for an error message: JSON-escaped (so the
 * message stays on one line) and at most 64 characters.
 *
 * @example
 * ```ts
 * import { quote } from "./output.ts";
 * console.log(quote("a\nb")); // "\"a\\nb\""
 * ```
 */
export function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? text.slice(0, 64) + "…" : text);
}

/**
 * The workers' JSON logger: one line per event, `{ level, msg, ts, ...fields }`,
 * info and debug on stdout, warn and error on stderr; and `describe()` for
 * errors in those lines, with credentials redacted.
 *
 * @module
 */

/** Severity of a log line. */
export type Level = "debug" | "info" | "warn" | "error";

/** Writes JSON log lines. */
export interface JsonLogger {
  /** Writes one line; warn and error lines flush what is buffered first, keeping the order. */
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
  /** Writes the buffered lines now (before exiting). */
  flush(): void;
}

/** Options of {@linkcode jsonLogger}. */
export interface JsonLoggerOptions {
  /**
   * Buffer info and debug lines for up to 20 ms (or 64 KiB) and write them in
   * one call: request lines come at tens of thousands a second on the hit
   * path, and one write per line would cost as much as serving. Call
   * `flush()` before exiting. Default `false` (every line written at once).
   */
  batch?: boolean;
  /** Fields put on every line after `level`, `msg` and `ts` (e.g. `{ isolate: 2 }`). */
  fields?: Record<string, unknown>;
  /**
   * Where the text goes instead of this process's stdout and stderr: an
   * isolate of the edge worker hands its lines to the main isolate, the one
   * writer of the process's output, so lines of two isolates never interleave.
   */
  sink?: (stream: "stdout" | "stderr", text: string) => void;
}

const encoder = new TextEncoder();

function writeAll(out: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  for (let n = 0; n < bytes.length;) n += out.writeSync(bytes.subarray(n));
}

/**
 * Writes `text` to this process's stdout or stderr, whole.
 *
 * @example
 * ```ts
 * import { writeOutput } from "./_log.ts";
 * writeOutput("stdout", "one line\n");
 * ```
 */
export function writeOutput(stream: "stdout" | "stderr", text: string): void {
  writeAll(stream === "stdout" ? Deno.stdout : Deno.stderr, text);
}

/** A JSON logger on this process's stdout and stderr (or `options.sink`). */
export function jsonLogger(options: JsonLoggerOptions = {}): JsonLogger {
  const batch = options.batch ?? false;
  const base = options.fields ?? {};
  const write = options.sink ?? writeOutput;
  let pending: string[] = [];
  let pendingChars = 0;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;

  const flush = (): void => {
    if (flushTimer !== undefined) clearTimeout(flushTimer);
    flushTimer = undefined;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    pendingChars = 0;
    write("stdout", text);
  };

  const log = (level: Level, msg: string, fields: Record<string, unknown> = {}): void => {
    const line = JSON.stringify({
      level,
      msg,
      ts: new Date().toISOString(),
      ...base,
      ...fields,
    }) + "\n";
    if (level === "error" || level === "warn") {
      flush(); // keep the order of events across the two streams
      write("stderr", line);
      return;
    }
    if (!batch) {
      write("stdout", line);
      return;
    }
    pending.push(line);
    pendingChars += line.length;
    if (pendingChars > 64 * 1024) flush();
    else flushTimer ??= setTimeout(flush, 20);
  };

  return { log, flush };
}

/** An error as one line (`Name: message`) with credentials redacted, for a log field. */
export { describe } from "../src/describe.ts";

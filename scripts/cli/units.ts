/**
 * Numbers as the operator types and reads them: strict integers, durations
 * (`500ms`, `1h30m`) and byte sizes (`64KiB`, `1MB`), parsed and formatted.
 *
 * @module
 */

/**
 * Parses a non-negative decimal integer with nothing around it (no `1e3`, no `0x`).
 *
 * @example
 * ```ts
 * import { parseIntStrict } from "./units.ts";
 * console.log(parseIntStrict("42"), parseIntStrict("4.2")); // 42 undefined
 * ```
 */
export function parseIntStrict(text: string): number | undefined {
  if (!/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a Go-style duration (`500ms`, `30s`, `1h30m`, also `d` and `w`) into
 * milliseconds; `0` alone is zero. Returns `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./units.ts";
 * console.log(parseDuration("1h30m"), parseDuration("500ms")); // 5400000 500
 * ```
 */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return text.length === 0 ? undefined : total;
}

/**
 * Formats milliseconds compactly, the inverse of {@link parseDuration}
 * (`1h30m`, `30s`, `500ms`).
 *
 * @example
 * ```ts
 * import { formatDuration } from "./units.ts";
 * console.log(formatDuration(5_400_000)); // "1h30m"
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms);
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) {
    const s = rest / 1000;
    parts.push(`${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, "")}s`);
  }
  return parts.join("");
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
};

/**
 * Parses a size the way `nats` does (binary multiples: `1K` = `1KB` = 1024);
 * `-1` means unlimited. Returns `undefined` if it is not one.
 *
 * @example
 * ```ts
 * import { parseBytes } from "./units.ts";
 * console.log(parseBytes("64KiB"), parseBytes("1M")); // 65536 1048576
 * ```
 */
export function parseBytes(text: string): number | undefined {
  if (text.trim() === "-1") return -1;
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (!m) return undefined;
  const mult = BYTE_UNITS[m[2]!.toUpperCase()];
  if (mult === undefined) return undefined;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Formats a byte count with binary units (`512 B`, `1.5 KiB`).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./units.ts";
 * console.log(formatBytes(1536)); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

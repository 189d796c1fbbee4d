/**
 * The seed progress line on stderr: a bar with percentage and ETA when the
 * input's size is known, keys written, keys/s and skipped, redrawn in place.
 *
 * @module
 */
import { writeAllSync } from "../cli/output.ts";
import { formatDuration } from "../cli/units.ts";
import type { SeedProgress } from "./loop.ts";

/** The progress line: `show()` redraws it, `clear()` erases it (so another line can be written). */
export interface ProgressLine {
  /** Redraws the line; `done` of `total` (records or bytes) sets the bar when both are known. */
  show(p: SeedProgress, total: number | undefined, done: number | undefined): void;
  /** Erases the line if it is shown. */
  clear(): void;
}

/** A progress line on `Deno.stderr`, not shown yet. */
export function progressLine(): ProgressLine {
  const encoder = new TextEncoder();
  let barShown = false;
  return {
    show(p, total, done) {
      writeAllSync(Deno.stderr, encoder.encode(`\r\x1b[K${progressBar(p, total, done)}`));
      barShown = true;
    },
    clear() {
      if (barShown) writeAllSync(Deno.stderr, encoder.encode("\r\x1b[K"));
      barShown = false;
    },
  };
}

function progressBar(p: SeedProgress, total: number | undefined, done: number | undefined) {
  const rate = p.elapsedMs > 0 ? (p.written * 1000) / p.elapsedMs : 0;
  const parts: string[] = [];
  if (total && done !== undefined) {
    const frac = Math.min(1, done / total);
    const width = 24;
    const fill = Math.round(frac * width);
    parts.push(`[${"#".repeat(fill)}${"-".repeat(width - fill)}] ${Math.floor(frac * 100)}%`);
    if (frac > 0 && frac < 1) {
      parts.push(
        `ETA ${formatDuration(Math.ceil((p.elapsedMs / frac) * (1 - frac) / 1000) * 1000)}`,
      );
    }
  }
  parts.push(`${p.written} keys`, `${Math.round(rate)} keys/s`);
  if (p.skipped) parts.push(`${p.skipped} skipped`);
  return parts.join("  ");
}

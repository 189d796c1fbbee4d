/**
 * Shrinking a failing schedule: replays subsets of its steps (chunks removed,
 * halves first, then single steps) and keeps a subset while it still fails
 * with a violation of the same rule, within a time budget. Every replay is a
 * full run against the real servers, so a shrunk schedule is a real failure,
 * not a model's.
 *
 * @module
 */
import { generate, type ModeName, type Schedule } from "./schedule.ts";

/** Runs a schedule and says which rules it broke. */
export type Replay = (s: Schedule) => Promise<Set<string>>;

/**
 * The smallest subset of `failing`'s step indices found within `budgetMs`
 * that still breaks `rule`, with the rules that subset broke.
 */
export async function shrink(
  failing: Schedule,
  mode: ModeName,
  rule: string,
  replay: Replay,
  budgetMs: number,
  onStep: (keep: number[], ok: boolean) => void = () => {},
): Promise<number[]> {
  const deadline = Date.now() + budgetMs;
  let keep = failing.steps.map((_, i) => i);
  let chunk = Math.max(1, Math.floor(keep.length / 2));
  while (chunk >= 1 && Date.now() < deadline) {
    let removed = false;
    for (let at = 0; at < keep.length && Date.now() < deadline; at += chunk) {
      const candidate = [...keep.slice(0, at), ...keep.slice(at + chunk)];
      if (candidate.length === 0) continue;
      const s = generate(failing.seed, [mode], { keep: candidate, gen: failing.gen });
      const broke = await replay(s).catch(() => new Set<string>());
      const still = broke.has(rule);
      onStep(candidate, still);
      if (still) {
        keep = candidate;
        removed = true;
        at -= chunk;
      }
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return keep;
}

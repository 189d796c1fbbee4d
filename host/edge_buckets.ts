/**
 * `KVEDGE_BUCKETS`, the buckets the edge worker serves: `name[:mode][:ro]`,
 * comma-separated, each name checked as a bucket name and listed once.
 *
 * @module
 */
import { bucketProblem } from "../src/keys.ts";
import type { CacheMode } from "../src/types.ts";
import { list } from "./env_vars.ts";

/** One bucket the edge serves, from `KVEDGE_BUCKETS`. */
export interface EdgeBucketConfig {
  /** Bucket name. */
  name: string;
  /** Cache mode. Default `lazy`. */
  mode: CacheMode;
  /** Writes refused at this edge (`:ro` suffix). */
  readOnly: boolean;
}

/**
 * The buckets of `KVEDGE_BUCKETS` (`v`); unset, the embedded setup serves
 * `demo`. A bad entry is a `TypeError` naming the variable.
 *
 * @example
 * ```ts
 * import { parseBuckets } from "./edge_buckets.ts";
 * console.log(parseBuckets("users:replica,products:ro", false).map((b) => b.mode)); // ["replica", "lazy"]
 * ```
 */
export function parseBuckets(v: string | undefined, embedded: boolean): EdgeBucketConfig[] {
  const items = list(v);
  if (items.length === 0) {
    if (embedded) return [{ name: "demo", mode: "lazy", readOnly: false }];
    throw new TypeError(
      "Cannot start edge: KVEDGE_BUCKETS is required with NATS_URL (e.g. users:replica,products:lazy:ro)",
    );
  }
  const seen = new Set<string>();
  return items.map((item) => {
    const [name = "", ...flags] = item.split(":").map((s) => s.trim());
    const problem = bucketProblem(name);
    if (problem !== undefined) throw new TypeError(`Cannot start edge: KVEDGE_BUCKETS: ${problem}`);
    if (seen.has(name)) {
      throw new TypeError(`Cannot start edge: KVEDGE_BUCKETS: bucket "${name}" is listed twice`);
    }
    seen.add(name);
    let mode: CacheMode = "lazy";
    let readOnly = false;
    for (const f of flags) {
      if (f === "lazy" || f === "replica") mode = f;
      else if (f === "ro") readOnly = true;
      else {
        throw new TypeError(
          `Cannot start edge: KVEDGE_BUCKETS: unknown flag ${
            JSON.stringify(f.slice(0, 32))
          } for "${name}" (lazy, replica or ro)`,
        );
      }
    }
    return { name, mode, readOnly };
  });
}

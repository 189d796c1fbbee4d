/**
 * The kinds of value an environment variable holds (a list, an integer in a
 * range, a boolean word), as zod schemas and one boolean parser: the
 * vocabulary `edge_config.ts` builds the worker's schema from.
 *
 * @module
 */
import { z } from "zod";
import { integerRule } from "../src/validate.ts";

/**
 * The comma-separated items of `v`, trimmed, empty ones dropped.
 *
 * @example
 * ```ts
 * import { list } from "./env_vars.ts";
 * console.log(list(" a, ,b ")); // ["a", "b"]
 * ```
 */
export const list = (v: string | undefined): string[] =>
  (v ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");

/**
 * A variable holding an integer from `min` to `max` (decimal digits only).
 *
 * @example
 * ```ts
 * import { intVar } from "./env_vars.ts";
 * console.log(intVar(1, 10).parse(" 7 ")); // 7
 * ```
 */
export const intVar = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const message = integerRule(min, max);
  return z.string().trim().regex(/^[0-9]+$/, { message })
    .transform(Number)
    .pipe(z.number().int().min(min, { message }).max(max, { message }));
};

/** What every boolean environment variable accepts, in the error message of a bad one. */
export const BOOLEAN_WORDS = "true/false, 1/0, yes/no or on/off";

/**
 * The one parser of boolean environment variables: `true`/`false`, `1`/`0`,
 * `yes`/`no`, `on`/`off` in any case; `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { parseBoolean } from "./env_vars.ts";
 * console.log(parseBoolean("Yes"), parseBoolean("off"), parseBoolean("banana")); // true false undefined
 * ```
 */
export function parseBoolean(text: string): boolean | undefined {
  const v = text.trim().toLowerCase();
  if (v === "1" || v === "true" || v === "yes" || v === "on") return true;
  if (v === "0" || v === "false" || v === "no" || v === "off") return false;
  return undefined;
}

/**
 * A variable holding a boolean word ({@link BOOLEAN_WORDS}).
 *
 * @example
 * ```ts
 * import { flagVar } from "./env_vars.ts";
 * console.log(flagVar.parse("on")); // true
 * ```
 */
export const flagVar = z.string().transform((v, ctx) => {
  const b = parseBoolean(v);
  if (b === undefined) {
    ctx.addIssue({ code: "custom", message: `must be ${BOOLEAN_WORDS}` });
    return z.NEVER;
  }
  return b;
});

/**
 * One validation style for every options object: a zod schema at the
 * boundary, and its first issue turned into a `TypeError` (wrong type) or a
 * `RangeError` (value out of range) with the message
 * `Cannot <action>: "<path>" <reason>, got <value>`.
 *
 * @module
 */
import { z } from "zod";
import { bucketProblem, filterProblem } from "./keys.ts";

/** A value that must be a function (zod has no plain "any function" schema). */
export const fn: z.ZodType<(...args: never[]) => unknown> = z.custom<
  (...args: never[]) => unknown
>((v) => typeof v === "function", { message: "must be a function" });

/** A KV bucket name, checked by {@linkcode bucketProblem}. */
export const bucketName: z.ZodType<string> = z.string().superRefine((b, ctx) => {
  const p = bucketProblem(b);
  if (p) ctx.addIssue({ code: "custom", message: p });
});

/** A key filter (`>`, `user.*`), checked by {@linkcode filterProblem}. */
export const keyFilter: z.ZodType<string> = z.string().superRefine((f, ctx) => {
  const p = filterProblem(f);
  if (p) ctx.addIssue({ code: "custom", message: p });
});

const NON_NEGATIVE = "must be a number >= 0";
/**
 * A duration or bound that may be unbounded: a number >= 0 or `Infinity`
 * (zod 4's `z.number()` refuses non-finite numbers).
 */
export const nonNegativeOrInfinity: z.ZodType<number> = z.union([
  z.number({ error: NON_NEGATIVE }).min(0, { error: NON_NEGATIVE }),
  z.literal(Infinity),
], { error: `${NON_NEGATIVE} (Infinity allowed)` });

function shown(got: unknown): string {
  return typeof got === "function" ? "a function" : typeof got === "number"
    ? String(got) // JSON would show NaN and Infinity as null
    : typeof got === "object" && got !== null
    ? "an object"
    : JSON.stringify(got) ?? String(got);
}

/** Formats a zod issue as `Cannot <action>: "<path>" <message>, got <value>`. */
function problem(action: string, input: unknown, issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  let got: unknown = input;
  for (const p of issue.path) {
    got = typeof got === "object" && got !== null
      ? (got as Record<PropertyKey, unknown>)[p]
      : undefined;
  }
  const where = path ? `"${path}" ` : "";
  return `Cannot ${action}: ${where}${issue.message.replace(/^Invalid input: /, "")}, got ${
    shown(got)
  }`;
}

/** How {@linkcode parseOptions} reports a bad value. */
export interface ParseOptionsOptions {
  /**
   * Report values out of range (too small, too big, not one of the allowed
   * values) as `RangeError` rather than `TypeError`. Default `true`.
   */
  rangeErrors?: boolean;
}

/**
 * Parses `input` with `schema`, or throws for its first issue: `TypeError`
 * for a wrong type, `RangeError` for a value out of range, each with a
 * `Cannot <action>: ...` message. `action` names what was attempted
 * ("open cache", "define projection").
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  action: string,
  options: ParseOptionsOptions = {},
): z.output<S> {
  if (typeof input !== "object" || input === null) {
    throw new TypeError(`Cannot ${action}: options must be an object`);
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const ranged = (options.rangeErrors ?? true) &&
    (issue.code === "too_small" || issue.code === "too_big" || issue.code === "invalid_value");
  const msg = problem(action, input, issue);
  throw ranged ? new RangeError(msg) : new TypeError(msg);
}

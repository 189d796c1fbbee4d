/**
 * One validation style for every options object: a zod schema at the
 * boundary, and its first issue turned into a `TypeError` (wrong type) or a
 * `RangeError` (value out of range) with the message
 * `Cannot <action>: "<path>" <reason>, got <value>`, the reason in words
 * ("must be a positive integer"), never zod's own ("Too small: …").
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

/**
 * An integer from `min` to `max`, refused with one message for every way it
 * can be wrong: "must be a positive integer" (1 up), "must be an integer >=
 * <min>" (no upper bound) or "must be an integer from <min> to <max>".
 */
export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER): z.ZodNumber {
  const error = integerRule(min, max);
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** The reason {@linkcode integer} gives for a value outside `min`..`max`. */
export function integerRule(min: number, max: number = Number.MAX_SAFE_INTEGER): string {
  if (max >= Number.MAX_SAFE_INTEGER) {
    return min === 1 ? "must be a positive integer" : `must be an integer >= ${min}`;
  }
  return `must be an integer from ${min} to ${max}`;
}

const ARTICLE: Record<string, string> = {
  array: "an array",
  boolean: "a boolean",
  function: "a function",
  int: "an integer",
  number: "a number",
  map: "an object",
  object: "an object",
  record: "an object",
  string: "a string",
};

/**
 * The reason of a zod issue in the house form ("must be …"), from the issue's
 * fields (`code`, `expected`, `minimum`, `origin`, …), never from zod's
 * wording ("Invalid input: expected string, received number"). Passed to
 * `safeParse` as its error map, so it words only the issues a schema left
 * without a message of its own; `undefined` keeps zod's.
 */
function reason(issue: z.core.$ZodRawIssue): string | undefined {
  const i = issue as z.core.$ZodRawIssue & {
    expected?: string;
    minimum?: number | bigint;
    maximum?: number | bigint;
    inclusive?: boolean;
    origin?: string;
    values?: unknown[];
  };
  switch (issue.code) {
    case "invalid_type":
      return `must be ${ARTICLE[i.expected ?? ""] ?? i.expected}`;
    case "too_small":
      if (i.origin === "number") {
        return Number(i.minimum) === 0 && !i.inclusive
          ? "must be a positive number"
          : `must be ${i.inclusive ? ">=" : ">"} ${i.minimum}`;
      }
      return Number(i.minimum) === 1 ? "must not be empty" : `must have at least ${i.minimum}`;
    case "too_big":
      return i.origin === "number"
        ? `must be ${i.inclusive ? "<=" : "<"} ${i.maximum}`
        : `must have at most ${i.maximum}`;
    case "invalid_value":
      return `must be ${(i.values ?? []).map((v) => JSON.stringify(v)).join(" or ")}`;
    case "invalid_union":
      return i.inclusive === false ? "more than one option matched" : undefined;
    default:
      return undefined;
  }
}

function shown(got: unknown): string {
  return typeof got === "function" ? "a function" : typeof got === "number"
    ? String(got) // JSON would show NaN and Infinity as null
    : typeof got === "object" && got !== null
    ? "an object"
    : JSON.stringify(got) ?? String(got);
}

/** Formats a zod issue about `input` as `Cannot <action>: "<path>" <message>, got <value>`. */
function problem(
  issue: z.core.$ZodIssue,
  { action, input }: { action: string; input: unknown },
): string {
  const path = issue.path.map(String).join(".");
  let got: unknown = input;
  for (const p of issue.path) {
    got = typeof got === "object" && got !== null
      ? (got as Record<PropertyKey, unknown>)[p]
      : undefined;
  }
  if (issue.code === "unrecognized_keys") {
    const names = issue.keys.map((k) => `"${[...issue.path.map(String), k].join(".")}"`);
    return `Cannot ${action}: ${names.join(", ")} ${
      names.length > 1 ? "are not options" : "is not an option"
    }`;
  }
  const where = path ? `"${path}" ` : "";
  return `Cannot ${action}: ${where}${issue.message}, got ${shown(got)}`;
}

/** What {@linkcode parseOptions} is parsing for, and how it reports a bad value. */
export interface ParseOptionsOptions {
  /** What was attempted, for the message: "open cache", "define projection". */
  action: string;
  /**
   * Report values out of range (too small, too big, not one of the allowed
   * values) as `RangeError` rather than `TypeError`. Default `true`.
   */
  rangeErrors?: boolean;
}

/**
 * Parses `input` with `schema`, or throws for its first issue: `TypeError`
 * for a wrong type, `RangeError` for a value out of range, each with a
 * `Cannot <action>: ...` message. `options.action` names what was attempted
 * ("open cache", "define projection").
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  options: ParseOptionsOptions,
): z.output<S> {
  const { action } = options;
  if (typeof input !== "object" || input === null) {
    throw new TypeError(`Cannot ${action}: options must be an object`);
  }
  const parsed = schema.safeParse(input, { error: reason });
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const ranged = (options.rangeErrors ?? true) &&
    (issue.code === "too_small" || issue.code === "too_big" || issue.code === "invalid_value");
  const msg = problem(issue, { action, input });
  throw ranged ? new RangeError(msg) : new TypeError(msg);
}

/**
 * `defineProjection()`: checks a projection's options (zod at the boundary)
 * and returns a frozen definition. No I/O.
 *
 * @module
 */
import { z } from "zod";
import { jsonCodec } from "../codec.ts";
import type { Codec, CreateBucketOptions } from "../types.ts";
import { bucketName, fn, keyFilter, parseOptions } from "../validate.ts";
import type {
  Projection,
  ProjectionBucketSource,
  ProjectionMap,
  ProjectionOptions,
  ProjectionStreamSource,
  ProjectionTargetOptions,
} from "./types.ts";

const NAME = /^[-\w]+$/;

function subjectProblem(subject: unknown): string | undefined {
  if (typeof subject !== "string" || subject.length === 0) return "must be a non-empty string";
  if (/\s/.test(subject)) return "must not contain whitespace";
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return "must not contain an empty token";
    if ((t.includes("*") || t.includes(">")) && t.length !== 1) {
      return "wildcards must be whole tokens";
    }
    if (t === ">" && i !== tokens.length - 1) return "'>' must be the last token";
  }
  return undefined;
}

const SourceSchema = z.object({
  stream: z.custom<string>((v) => typeof v === "string" && NAME.test(v), {
    message: "must be letters, digits, '-' or '_'",
  }).optional(),
  subject: z.unknown().superRefine((s, ctx) => {
    const p = s === undefined ? undefined : subjectProblem(s);
    if (p) ctx.addIssue({ code: "custom", message: p });
  }).optional(),
  bucket: bucketName.optional(),
  keys: keyFilter.optional(),
}, { error: "must be { stream, subject? } or { bucket, keys? }" }).superRefine((s, ctx) => {
  if ((s.stream === undefined) === (s.bucket === undefined)) {
    ctx.addIssue({ code: "custom", message: 'must have exactly one of "stream" and "bucket"' });
  }
});

const TargetSchema = z.preprocess(
  (t) => typeof t === "string" ? { bucket: t } : t,
  z.object({
    bucket: bucketName,
    create: z.custom<boolean | CreateBucketOptions>(
      (v) => typeof v === "boolean" || (typeof v === "object" && v !== null),
      { message: "must be a boolean or bucket settings" },
    ).optional(),
  }, { error: "must be a bucket name or { bucket, create? }" }),
);

const DefinitionSchema = z.object({
  name: z.custom<string>(
    (v) => typeof v === "string" && NAME.test(v) && v.length <= 200,
    { message: "must be 1 to 200 letters, digits, '-' or '_'" },
  ),
  source: SourceSchema,
  target: TargetSchema,
  map: fn,
  codec: z.object({ encode: fn, decode: fn }, {
    error: "must have encode() and decode()",
  }).loose().optional(),
});

/**
 * Describes a projection: checks the options and returns a frozen
 * definition. No I/O; run it with {@linkcode runProjection} or
 * `deno task project <module>`.
 *
 * @example
 * ```ts
 * import { defineProjection } from "../../projection.ts";
 *
 * interface Summary { status: string; items: number; total: number; updatedAt: string }
 *
 * export default defineProjection<Summary>({
 *   name: "order-summary",
 *   source: { stream: "ORDERS", subject: "orders.>" },
 *   target: "order-summary",
 *   async map(event, ctx) {
 *     const e = event.json<{ type: string; orderId: string; qty?: number; price?: number }>();
 *     const key = `order.${e.orderId}`;
 *     if (e.type === "cancelled") return { key, delete: true };
 *     const prev = (await ctx.get(key))?.value ?? { status: "created", items: 0, total: 0, updatedAt: "" };
 *     const updatedAt = new Date(event.timestampMs).toISOString();
 *     if (e.type === "item_added") {
 *       const qty = e.qty ?? 0;
 *       return { key, value: { ...prev, items: prev.items + qty, total: prev.total + qty * (e.price ?? 0), updatedAt } };
 *     }
 *     return { key, value: { ...prev, status: e.type, updatedAt } };
 *   },
 * });
 * ```
 */
export function defineProjection<V = unknown>(options: ProjectionOptions<V>): Projection<V> {
  // Every problem is a TypeError, as it always was: a definition is code, not a tuned value.
  const o = parseOptions(DefinitionSchema, options, {
    action: "define projection",
    rangeErrors: false,
  });
  const source: Readonly<ProjectionStreamSource> | Readonly<Required<ProjectionBucketSource>> =
    o.source.bucket !== undefined
      ? Object.freeze({ bucket: o.source.bucket, keys: o.source.keys ?? ">" })
      : Object.freeze({
        stream: o.source.stream!,
        subject: o.source.subject as string | undefined,
      });
  const target: Readonly<Required<ProjectionTargetOptions>> = Object.freeze({
    bucket: o.target.bucket,
    create: o.target.create ?? true,
  });
  if ("bucket" in source && source.bucket === target.bucket) {
    throw new TypeError(
      `Cannot define projection: the target bucket "${target.bucket}" is also the source (it would feed itself)`,
    );
  }
  const map = options.map as ProjectionMap<V>;
  const codec: Codec<V> = options.codec ?? jsonCodec<V>();
  return Object.freeze({ kind: "projection" as const, name: o.name, source, target, map, codec });
}

/**
 * Whether `value` is a projection made by {@linkcode defineProjection} (in
 * this or another copy of kvedge).
 *
 * @example
 * ```ts
 * import { isProjection } from "./define.ts";
 * console.log(isProjection({})); // false
 * ```
 */
export function isProjection(value: unknown): value is Projection<unknown> {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Partial<Projection<unknown>>;
  return p.kind === "projection" && typeof p.map === "function" && typeof p.name === "string";
}

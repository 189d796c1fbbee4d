/**
 * The options of `runProjection()`, checked once where they enter (zod) and
 * resolved to their defaults.
 *
 * @module
 */
import { z } from "zod";
import { parseOptions } from "../validate.ts";
import type { RunProjectionOptions } from "./types.ts";

/** {@link RunProjectionOptions} with every default filled in. */
export interface ResolvedRunOptions {
  fromStart: boolean;
  ackWaitMs: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  onMapError: "stop" | "skip";
  statusIntervalMs: number;
  cacheMaxKeys: number;
  hubDomain: string | undefined;
  signal: AbortSignal | undefined;
}

const int = (min: number) => z.number().int().min(min).max(Number.MAX_SAFE_INTEGER);

const RunOptionsSchema = z.object({
  fromStart: z.unknown().optional(),
  ackWaitMs: int(1_000).optional(),
  retryDelayMs: int(1).optional(),
  maxRetryDelayMs: int(1).optional(),
  onMapError: z.enum(["stop", "skip"]).optional(),
  statusIntervalMs: int(0).optional(),
  cacheMaxKeys: int(0).optional(),
  region: z.object({
    hubDomain: z.string().regex(/^[A-Za-z0-9_-]+$/, {
      message: "must be a JetStream domain name (letters, digits, _ and -)",
    }),
  }).strict().optional(),
  signal: z.custom<AbortSignal>((v) => typeof v === "object" && v !== null && "aborted" in v, {
    message: "must be an AbortSignal",
  }).optional(),
});

/** Checks `input` (a `TypeError`/`RangeError` naming the bad option) and fills in the defaults. */
export function resolveRunOptions(input: RunProjectionOptions): ResolvedRunOptions {
  const o = parseOptions(RunOptionsSchema, input, { action: "run projection" });
  const retryDelayMs = o.retryDelayMs ?? 250;
  return {
    fromStart: o.fromStart === true,
    ackWaitMs: o.ackWaitMs ?? 10_000,
    retryDelayMs,
    maxRetryDelayMs: Math.max(retryDelayMs, o.maxRetryDelayMs ?? 5_000),
    onMapError: o.onMapError ?? "stop",
    statusIntervalMs: o.statusIntervalMs ?? 5_000,
    cacheMaxKeys: o.cacheMaxKeys ?? 10_000,
    hubDomain: o.region?.hubDomain,
    signal: input.signal,
  };
}

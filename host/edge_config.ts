/**
 * Configuration of the edge worker (`deno task serve`) from environment
 * variables, validated with zod at the boundary. A bad value is a `TypeError`
 * naming the variable (never its value: some are secrets); the worker turns
 * it into one error line and exit code 2 before it listens.
 *
 * @module
 */
import { z } from "zod";
import type { ConnectionOptions } from "@nats-io/nats-core";
import { type NatsAuth, natsConnectionOptions, type NatsEnv, parseNatsEnv } from "./nats_env.ts";
import { OPTION_BOUNDS } from "../src/options.ts";
import { flagVar, intVar, list } from "./env_vars.ts";
import { type EdgeBucketConfig, parseBuckets } from "./edge_buckets.ts";
import { APP_LIMIT_DEFAULTS, type AppLimits } from "../src/http/app_options.ts";

/**
 * The facade's bounds (`createApp()`'s {@link AppLimits}) the worker takes
 * from the environment: each one's variable and the range the worker accepts.
 * The one list of them: the config's fields, its schema, its log line
 * ({@link describeEdgeConfig}) and the app (`workers/_edge_app.ts`, through
 * {@link edgeLimits}) all follow it, and their defaults are `createApp()`'s
 * own (`APP_LIMIT_DEFAULTS`). A bound added to `createApp()` is offered to
 * the worker by adding one line here.
 *
 * @example
 * ```ts
 * import { EDGE_LIMITS } from "./edge_config.ts";
 * console.log(EDGE_LIMITS.maxBodyBytes.env); // "KVEDGE_MAX_BODY_BYTES"
 * ```
 */
export const EDGE_LIMITS = {
  maxBodyBytes: { env: "KVEDGE_MAX_BODY_BYTES", min: 1, max: 64 << 20 },
  maxSseStreams: { env: "KVEDGE_MAX_SSE_STREAMS", min: 1, max: 1_000_000 },
  sseBufferBytes: { env: "KVEDGE_SSE_BUFFER_BYTES", min: 1024, max: 1 << 30 },
  maxJsonDepth: { env: "KVEDGE_MAX_JSON_DEPTH", min: 1, max: 10_000 },
  maxConcurrentScans: { env: "KVEDGE_MAX_CONCURRENT_SCANS", min: 1, max: 10_000 },
  maxHistoryBytes: { env: "KVEDGE_MAX_HISTORY_BYTES", min: 1024, max: 1 << 30 },
  maxReplays: { env: "KVEDGE_MAX_REPLAYS", min: 1, max: 1_000_000 },
  maxReplaysPerClient: { env: "KVEDGE_MAX_REPLAYS_PER_CLIENT", min: 1, max: 1_000_000 },
  maxHeaderCount: { env: "KVEDGE_MAX_HEADER_COUNT", min: 8, max: 128 },
  maxHeaderBytes: { env: "KVEDGE_MAX_HEADER_BYTES", min: 1024, max: 1 << 20 },
} as const satisfies { [K in keyof AppLimits]?: { env: string; min: number; max: number } };

/** The names of the facade bounds the worker sets ({@link EDGE_LIMITS}). */
export type EdgeLimit = keyof typeof EDGE_LIMITS;

/** The facade bounds of the worker's configuration, resolved (see {@link EDGE_LIMITS}). */
export type EdgeLimits = { [K in EdgeLimit]: number };

/**
 * The facade bounds of `config`, as `createApp()`'s `limits` takes them.
 *
 * @example
 * ```ts
 * import { edgeLimits, parseEdgeConfig } from "./edge_config.ts";
 * console.log(edgeLimits(parseEdgeConfig({ KVEDGE_MAX_REPLAYS: "8" })).maxReplays); // 8
 * ```
 */
export function edgeLimits(config: EdgeLimits): EdgeLimits {
  const out = {} as EdgeLimits;
  for (const k of Object.keys(EDGE_LIMITS) as EdgeLimit[]) out[k] = config[k];
  return out;
}

/** How the edge authenticates to NATS (at most one method). */
export type EdgeNatsAuth = NatsAuth;

/** The edge worker's resolved configuration (the facade bounds: {@link EDGE_LIMITS}). */
export interface EdgeConfig extends EdgeLimits {
  /** NATS servers from `NATS_URL`; `undefined`: start an embedded nats-server. */
  natsServers: string[] | undefined;
  /** NATS authentication. */
  natsAuth: EdgeNatsAuth;
  /** TLS files for NATS, if any. */
  natsTls: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
  /** Prefix of reply and delivery subjects (least-privilege edges), from `NATS_INBOX_PREFIX`. */
  natsInboxPrefix: string | undefined;
  /** Deprecated NATS variable names in use (`NATS_PASS`, `NATS_NKEY_SEED`), to warn about. */
  natsDeprecated: string[];
  /** Buckets served. */
  buckets: EdgeBucketConfig[];
  /** HTTP port (0: any free port). */
  port: number;
  /** HTTP listen address. */
  hostname: string;
  /** Bearer tokens for reads (empty: reads open). */
  readTokens: string[];
  /** Bearer tokens for writes. */
  writeTokens: string[];
  /** Writes allowed with no token (no write token configured). */
  anonymousWrites: boolean;
  /** Local bounds of every cache. */
  local: { maxItems: number; maxBytes: number; maxTtlMs?: number };
  /** Create missing buckets. */
  createBuckets: boolean;
  /** Deadline of a miss fetch, in ms (cache default when undefined). */
  missTimeoutMs?: number;
  /** Rule 8: how long a bookmarked read waits for the watcher, in ms (cache default when undefined). */
  bookmarkWaitMs?: number;
  /** Rule 8: the name of the bookmark cookie browsers may use (off when undefined). */
  bookmarkCookie?: string;
  /**
   * A regional edge: the hub's JetStream domain, from `KVEDGE_HUB_DOMAIN`
   * (`NATS_URL` is then the region's leaf node, which holds a mirror of each
   * bucket; see docs/topologies.md). Undefined: not regional.
   */
  hubDomain?: string;
  /** How long resident entries are served stale during an outage, in ms (cache default when undefined). */
  staleIfErrorMs?: number;
  /** CORS origins (empty: CORS off). */
  corsOrigins: string[];
  /** Most miss fetches in flight per cache (`maxConcurrentMisses`); cache default when undefined. */
  maxConcurrentMisses?: number;
  /** Largest share of the local bounds negative entries may take (`local.maxNegativeShare`). */
  maxNegativeShare?: number;
  /**
   * Accept connections through the gate (cap, timeouts) in front of
   * `Deno.serve`; false: `Deno.serve` on the port itself (faster, unbounded).
   */
  connectionGate: boolean;
  /** Most open client connections; undefined: sized from the open-file limit. */
  maxConnections?: number;
  /** A new connection must send a complete request head within this, in ms. */
  headerTimeoutMs: number;
  /** A connection with no bytes either way for this long is closed, in ms. */
  idleTimeoutMs: number;
  /** How long `/readyz` tolerates a stale bucket, in ms (undefined: forever). */
  readyMaxStaleMs?: number;
  /** kvedge's data directory (the embedded server's store is `<dataDir>/nats`). */
  dataDir: string;
  /** One log line per request (successful reads are sampled, see `logHitsEvery`). */
  logRequests: boolean;
  /** One successful GET/HEAD in this many is logged (1: every one); errors, writes and slow requests always are. */
  logHitsEvery: number;
  /** A request slower than this, in ms, is always logged. */
  logSlowMs: number;
  /** Bound on draining in-flight requests at shutdown, in ms. */
  shutdownTimeoutMs: number;
  /**
   * Isolates serving HTTP, from `KVEDGE_WORKERS` (`auto`: one per core the
   * runtime sees). Default 1: the worker serves from its main isolate, as
   * always. More: that many Web Workers, each with its own NATS connection,
   * caches (its own `local` bounds) and connection gate, sharing the port.
   */
  workers: number;
}

/** A variable that sets an `openCache()` option: the library's own bounds (src/options.ts). */
const optionVar = (name: keyof typeof OPTION_BOUNDS) => {
  const [min, max] = OPTION_BOUNDS[name];
  return intVar(min, max);
};

/** The schema of the {@link EDGE_LIMITS} variables, each an integer in the worker's range. */
function limitVars(): Record<string, z.ZodOptional<ReturnType<typeof intVar>>> {
  return Object.fromEntries(
    Object.values(EDGE_LIMITS).map(({ env, min, max }) => [env, intVar(min, max).optional()]),
  );
}

/** The {@link EDGE_LIMITS} of the parsed environment, `createApp()`'s default where unset. */
function limitsOf(e: Record<string, unknown>): EdgeLimits {
  const out = {} as EdgeLimits;
  for (const [k, { env }] of Object.entries(EDGE_LIMITS) as [EdgeLimit, { env: string }][]) {
    out[k] = (e[env] as number | undefined) ?? APP_LIMIT_DEFAULTS[k];
  }
  return out;
}

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const ORIGIN = /^(?:\*|[a-z][a-z0-9+.-]*:\/\/[^/\s]+)$/i;

/** The most isolates `KVEDGE_WORKERS` may ask for. */
const MAX_WORKERS = 256;

const EnvSchema = z.object({
  KVEDGE_BUCKETS: z.string().optional(),
  PORT: intVar(0, 65535).optional(),
  HOSTNAME: z.string().trim().min(1).optional(),
  KVEDGE_READ_TOKEN: z.string().optional().transform((v, ctx) => tokens(v, ctx)),
  KVEDGE_WRITE_TOKEN: z.string().optional().transform((v, ctx) => tokens(v, ctx)),
  KVEDGE_ANONYMOUS_WRITES: flagVar.optional(),
  KVEDGE_MAX_ITEMS: optionVar("maxItems").optional(),
  KVEDGE_MAX_BYTES: optionVar("maxBytes").optional(),
  KVEDGE_MAX_TTL_MS: intVar(0, OPTION_BOUNDS.maxTtlMs[1]).optional(), // 0: no bound
  KVEDGE_CREATE_BUCKETS: flagVar.optional(),
  KVEDGE_MISS_TIMEOUT_MS: optionVar("missTimeoutMs").optional(),
  KVEDGE_BOOKMARK_WAIT_MS: optionVar("bookmarkWaitMs").optional(),
  KVEDGE_BOOKMARK_COOKIE: z.string().trim().regex(/^[A-Za-z0-9_-]{1,64}$/, {
    message: "must be 1 to 64 letters, digits, _ or -",
  }).optional(),
  KVEDGE_STALE_IF_ERROR_MS: intVar(0, 2 ** 31 - 1).optional(),
  KVEDGE_HUB_DOMAIN: z.string().trim().regex(/^[A-Za-z0-9_-]+$/, {
    message: "must be a JetStream domain name (letters, digits, _ and -)",
  }).optional(),
  KVEDGE_CORS_ORIGINS: z.string().optional().transform((v, ctx) => {
    const origins = list(v);
    if (origins.some((o) => !ORIGIN.test(o))) {
      ctx.addIssue({ code: "custom", message: 'every origin must be "scheme://host[:port]" or *' });
      return z.NEVER;
    }
    return origins;
  }),
  ...limitVars(),
  KVEDGE_MAX_CONCURRENT_MISSES: optionVar("maxConcurrentMisses").optional(),
  KVEDGE_MAX_NEGATIVE_PERCENT: intVar(1, 100).optional(),
  KVEDGE_MAX_CONNECTIONS: intVar(1, 1_000_000).optional(),
  KVEDGE_CONNECTION_GATE: flagVar.optional(),
  KVEDGE_HEADER_TIMEOUT_MS: intVar(100, 2 ** 31 - 1).optional(),
  KVEDGE_IDLE_TIMEOUT_MS: intVar(100, 2 ** 31 - 1).optional(),
  KVEDGE_READY_MAX_STALE_MS: intVar(0, 2 ** 31 - 1).optional(),
  KVEDGE_DATA_DIR: z.string().trim().min(1).optional(),
  KVEDGE_LOG_REQUESTS: flagVar.optional(),
  KVEDGE_LOG_HITS_EVERY: intVar(1).optional(),
  KVEDGE_LOG_SLOW_MS: intVar(0).optional(),
  KVEDGE_SHUTDOWN_TIMEOUT_MS: intVar(0, 600_000).optional(),
  KVEDGE_WORKERS: z.string().trim().toLowerCase().transform((v, ctx) => {
    if (v === "auto") return Math.min(MAX_WORKERS, Math.max(1, navigator.hardwareConcurrency));
    const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!(n >= 1 && n <= MAX_WORKERS)) {
      ctx.addIssue({
        code: "custom",
        message: `must be auto or an integer from 1 to ${MAX_WORKERS}`,
      });
      return z.NEVER;
    }
    return n;
  }).optional(),
});

/** The worker's variables, parsed. */
type EdgeEnv = z.infer<typeof EnvSchema>;

function tokens(v: string | undefined, ctx: z.RefinementCtx): string[] {
  const ts = list(v);
  if (ts.some((t) => !B64TOKEN.test(t))) {
    // The message must not contain the token: it is a secret.
    ctx.addIssue({ code: "custom", message: "tokens may only contain A-Z a-z 0-9 - . _ ~ + / =" });
    return z.NEVER;
  }
  return ts;
}

/**
 * Parses the edge worker's environment. Throws a `TypeError` whose message
 * names the faulty variable and never contains a value.
 *
 * @example
 * ```ts
 * import { parseEdgeConfig } from "./edge_config.ts";
 * const cfg = parseEdgeConfig({ KVEDGE_BUCKETS: "users:replica,products:ro", NATS_URL: "nats://127.0.0.1:4222" });
 * console.log(cfg.buckets.map((b) => b.name)); // ["users", "products"]
 * ```
 */
export function parseEdgeConfig(env: Record<string, string | undefined>): EdgeConfig {
  const e = parseEnv(env);
  const nats = parseNatsEnv(env, { action: "start edge" });
  const embedded = nats.servers === undefined;
  checkCombinations(e, nats, embedded);
  return {
    natsServers: nats.servers,
    natsAuth: nats.auth,
    natsTls: nats.tls,
    natsInboxPrefix: nats.inboxPrefix,
    natsDeprecated: nats.deprecated,
    buckets: parseBuckets(e.KVEDGE_BUCKETS, embedded),
    readTokens: e.KVEDGE_READ_TOKEN,
    writeTokens: e.KVEDGE_WRITE_TOKEN,
    // Writes without a token only in the self-contained dev setup, or when asked for.
    anonymousWrites: e.KVEDGE_WRITE_TOKEN.length === 0 && (e.KVEDGE_ANONYMOUS_WRITES ?? embedded),
    ...cacheSettings(e, embedded),
    corsOrigins: e.KVEDGE_CORS_ORIGINS,
    ...limitsOf(e),
    ...servingSettings(e),
  };
}

/** The worker's variables of `env`, checked: only ours, and an empty one counts as unset. */
function parseEnv(env: Record<string, string | undefined>): EdgeEnv {
  // `PORT= deno task serve` means the default port.
  const known: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.shape)) {
    const v = env[name];
    if (v !== undefined && v.trim() !== "") known[name] = v;
  }
  const r = EnvSchema.safeParse(known);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new TypeError(`Cannot start edge: ${issue.path.join(".")}: ${issue.message}`);
  }
  return r.data;
}

/** Refuses settings that are each valid but contradict one another. */
function checkCombinations(e: EdgeEnv, nats: NatsEnv, embedded: boolean): void {
  if (embedded && (nats.auth.kind !== "none" || nats.tls !== undefined)) {
    throw new TypeError(
      "Cannot start edge: NATS credentials or TLS files are set but NATS_URL is not",
    );
  }
  if (e.KVEDGE_ANONYMOUS_WRITES === true && e.KVEDGE_WRITE_TOKEN.length > 0) {
    throw new TypeError(
      "Cannot start edge: KVEDGE_ANONYMOUS_WRITES=1 contradicts KVEDGE_WRITE_TOKEN",
    );
  }
  if (e.KVEDGE_HUB_DOMAIN !== undefined && (embedded || e.KVEDGE_CREATE_BUCKETS === true)) {
    throw new TypeError(
      "Cannot start edge: KVEDGE_HUB_DOMAIN needs NATS_URL (the region's leaf node) and no KVEDGE_CREATE_BUCKETS",
    );
  }
  if ((e.KVEDGE_WORKERS ?? 1) > 1 && e.KVEDGE_CONNECTION_GATE === false) {
    // Deno.serve shares a port between isolates only with --unstable-net
    // (reusePort) or inside `deno serve --parallel`; the gate's listener can.
    throw new TypeError(
      "Cannot start edge: KVEDGE_WORKERS above 1 needs the connection gate (KVEDGE_CONNECTION_GATE unset or 1)",
    );
  }
}

/** What the config passes to each `openCache()`. */
function cacheSettings(e: EdgeEnv, embedded: boolean) {
  return {
    local: {
      maxItems: e.KVEDGE_MAX_ITEMS ?? 100_000,
      maxBytes: e.KVEDGE_MAX_BYTES ?? 64 << 20,
      ...(e.KVEDGE_MAX_TTL_MS ? { maxTtlMs: e.KVEDGE_MAX_TTL_MS } : {}),
    },
    createBuckets: e.KVEDGE_CREATE_BUCKETS ?? embedded,
    ...(e.KVEDGE_MISS_TIMEOUT_MS === undefined ? {} : { missTimeoutMs: e.KVEDGE_MISS_TIMEOUT_MS }),
    ...(e.KVEDGE_BOOKMARK_WAIT_MS === undefined
      ? {}
      : { bookmarkWaitMs: e.KVEDGE_BOOKMARK_WAIT_MS }),
    ...(e.KVEDGE_BOOKMARK_COOKIE === undefined ? {} : { bookmarkCookie: e.KVEDGE_BOOKMARK_COOKIE }),
    ...(e.KVEDGE_HUB_DOMAIN === undefined ? {} : { hubDomain: e.KVEDGE_HUB_DOMAIN }),
    ...(e.KVEDGE_STALE_IF_ERROR_MS === undefined
      ? {}
      : { staleIfErrorMs: e.KVEDGE_STALE_IF_ERROR_MS }),
    ...(e.KVEDGE_MAX_CONCURRENT_MISSES === undefined
      ? {}
      : { maxConcurrentMisses: e.KVEDGE_MAX_CONCURRENT_MISSES }),
    ...(e.KVEDGE_MAX_NEGATIVE_PERCENT === undefined
      ? {}
      : { maxNegativeShare: e.KVEDGE_MAX_NEGATIVE_PERCENT / 100 }),
  };
}

/** How the worker listens, logs, reports readiness and stops. */
function servingSettings(e: EdgeEnv) {
  return {
    port: e.PORT ?? 8080,
    hostname: e.HOSTNAME ?? "127.0.0.1",
    connectionGate: e.KVEDGE_CONNECTION_GATE ?? true,
    ...(e.KVEDGE_MAX_CONNECTIONS === undefined ? {} : { maxConnections: e.KVEDGE_MAX_CONNECTIONS }),
    headerTimeoutMs: e.KVEDGE_HEADER_TIMEOUT_MS ?? 10_000,
    idleTimeoutMs: e.KVEDGE_IDLE_TIMEOUT_MS ?? 60_000,
    ...(e.KVEDGE_READY_MAX_STALE_MS === undefined
      ? {}
      : { readyMaxStaleMs: e.KVEDGE_READY_MAX_STALE_MS }),
    dataDir: e.KVEDGE_DATA_DIR ?? ".data",
    logRequests: e.KVEDGE_LOG_REQUESTS ?? true,
    logHitsEvery: e.KVEDGE_LOG_HITS_EVERY ?? 100,
    logSlowMs: e.KVEDGE_LOG_SLOW_MS ?? 100,
    shutdownTimeoutMs: e.KVEDGE_SHUTDOWN_TIMEOUT_MS ?? 10_000,
    workers: e.KVEDGE_WORKERS ?? 1,
  };
}

/**
 * The nats.js connection options of a config: authenticator and TLS. Reads
 * the creds file; a missing or unreadable one is a `TypeError` (a config
 * error) naming the variable.
 *
 * @example
 * ```ts
 * import { natsConnectOptions, parseEdgeConfig } from "./edge_config.ts";
 * const cfg = parseEdgeConfig({ NATS_URL: "nats://127.0.0.1:4222", NATS_TOKEN: "t", KVEDGE_BUCKETS: "a" });
 * const opts = await natsConnectOptions(cfg);
 * console.log(opts.servers); // ["nats://127.0.0.1:4222"]
 * ```
 */
export async function natsConnectOptions(config: EdgeConfig): Promise<Partial<ConnectionOptions>> {
  const opts = await natsConnectionOptions({
    servers: config.natsServers,
    auth: config.natsAuth,
    tls: config.natsTls,
    inboxPrefix: config.natsInboxPrefix,
    deprecated: config.natsDeprecated,
  }, { action: "start edge" });
  return { name: "kvedge-edge", ...opts };
}

/**
 * The config as it may be logged: secrets replaced by their count.
 *
 * @example
 * ```ts
 * import { describeEdgeConfig, parseEdgeConfig } from "./edge_config.ts";
 * console.log(describeEdgeConfig(parseEdgeConfig({ KVEDGE_WRITE_TOKEN: "s3cret" })).writeTokens); // 1
 * ```
 */
export function describeEdgeConfig(config: EdgeConfig): Record<string, unknown> {
  return {
    nats: config.natsServers ?? "embedded",
    natsAuth: config.natsAuth.kind,
    natsTls: config.natsTls !== undefined,
    buckets: config.buckets.map((b) => `${b.name}:${b.mode}${b.readOnly ? ":ro" : ""}`),
    listen: `${config.hostname}:${config.port}`,
    readTokens: config.readTokens.length,
    writeTokens: config.writeTokens.length,
    anonymousWrites: config.anonymousWrites,
    local: config.local,
    createBuckets: config.createBuckets,
    missTimeoutMs: config.missTimeoutMs,
    bookmarkWaitMs: config.bookmarkWaitMs,
    bookmarkCookie: config.bookmarkCookie,
    staleIfErrorMs: config.staleIfErrorMs,
    hubDomain: config.hubDomain,
    corsOrigins: config.corsOrigins,
    ...edgeLimits(config),
    maxConcurrentMisses: config.maxConcurrentMisses,
    maxNegativeShare: config.maxNegativeShare,
    connectionGate: config.connectionGate,
    maxConnections: config.maxConnections ?? "auto",
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    readyMaxStaleMs: config.readyMaxStaleMs,
    dataDir: config.dataDir,
    logRequests: config.logRequests,
    logHitsEvery: config.logHitsEvery,
    logSlowMs: config.logSlowMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    workers: config.workers,
  };
}

/**
 * The projector's command line: its usage and help text, and `parseFlags()`
 * (flags, module paths, and the `PROJECTOR_METRICS_PORT` and
 * `KVEDGE_HUB_DOMAIN` variables).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../host/usage_error.ts";

/** Bad arguments or a bad module: logged, then the usage line, exit code 2. */
export { UsageError };

/** The one-line usage. */
export const USAGE =
  "usage: deno task project [--from-start] [--until-caught-up] [--status-every <s>] " +
  "[--ack-wait-ms <ms>] [--on-map-error stop|skip] [--metrics-port <port>] <module>...";

/** The `--help` text. */
export const HELP = `${USAGE}

Runs the projections that each module default-exports (one, or an array of
them), on one NATS connection, until stopped. Docs: docs/projections.md.

  --from-start              replay every projection from its source's first event
  --until-caught-up         exit 0 once every projection has applied every event
  --status-every <s>        seconds between status lines (default 10); a change of
                            state or error is logged at once
  --ack-wait-ms <ms>        redelivery delay of an event a crashed run held
                            (default 10000, at least 1000)
  --on-map-error stop|skip  what a failing map does (default stop)
  --metrics-port <port>     serve /metrics (Prometheus) and /healthz on 127.0.0.1
                            (also PROJECTOR_METRICS_PORT)
  -h, --help                this help

Connection: NATS_URL (comma-separated), else the embedded server of a running
\`deno task serve\` (found under .data/), else nats://127.0.0.1:4222; auth from
NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_NKEY, TLS from NATS_TLS_*.
KVEDGE_HUB_DOMAIN=<domain>: NATS_URL is a region's leaf node; source, checkpoint
and target are on the hub, reached through that JetStream domain.

Example: deno task project examples/orders/projection.ts

SIGINT, SIGTERM or SIGHUP stop gracefully. Exit codes: 0 after a graceful stop,
1 when NATS or a projection fails, 2 for bad usage or a bad module.`;

/** `--help` or `-h` was given. */
export class HelpRequested extends Error {}

/** The parsed command line (and the environment it reads). */
export interface Flags {
  modules: string[];
  fromStart: boolean;
  untilCaughtUp: boolean;
  statusEveryMs: number;
  ackWaitMs: number | undefined;
  onMapError: "stop" | "skip";
  metricsPort: number | undefined;
  hubDomain: string | undefined;
}

/** Parses the command line; throws {@linkcode UsageError} or {@linkcode HelpRequested}. */
export function parseFlags(args: string[]): Flags {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "from-start": { type: "boolean", default: false },
        "until-caught-up": { type: "boolean", default: false },
        "status-every": { type: "string" },
        "ack-wait-ms": { type: "string" },
        "on-map-error": { type: "string" },
        "metrics-port": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  if (v.help) throw new HelpRequested();
  if (parsed.positionals.length === 0) throw new UsageError("name at least one projection module");
  const num = (name: string, text: string | undefined, min: number, max = Infinity) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be a number in [${min}, ${max}], got ${text}`);
    }
    return n;
  };
  const onMapError = v["on-map-error"] ?? "stop";
  if (onMapError !== "stop" && onMapError !== "skip") {
    throw new UsageError(`--on-map-error must be stop or skip, got ${onMapError}`);
  }
  const metricsPort = num(
    "metrics-port",
    v["metrics-port"] ?? (Deno.env.get("PROJECTOR_METRICS_PORT") || undefined),
    0,
    65535,
  );
  const ackWait = num("ack-wait-ms", v["ack-wait-ms"], 1000);
  const hubDomain = Deno.env.get("KVEDGE_HUB_DOMAIN")?.trim() || undefined;
  if (hubDomain !== undefined && !/^[A-Za-z0-9_-]+$/.test(hubDomain)) {
    throw new UsageError(
      `KVEDGE_HUB_DOMAIN must be a JetStream domain name (letters, digits, _ and -), got ${hubDomain}`,
    );
  }
  return {
    hubDomain,
    modules: parsed.positionals,
    fromStart: v["from-start"] === true,
    untilCaughtUp: v["until-caught-up"] === true,
    statusEveryMs: Math.round((num("status-every", v["status-every"], 0.1) ?? 10) * 1000),
    ackWaitMs: ackWait === undefined ? undefined : Math.round(ackWait),
    onMapError,
    metricsPort: metricsPort === undefined ? undefined : Math.round(metricsPort),
  };
}

/**
 * Which `nats-server` and `nats` CLI executables to run: the one place that
 * decides, for the embedded server, the tests and the benchmarks.
 *
 * @module
 */

/**
 * Where `scripts/setup.sh` builds the current nats-server and the `nats` CLI
 * (`<project>/.tools/bin`), or `undefined` when this module is not loaded from
 * a local checkout.
 */
function toolsBinDir(): string | undefined {
  const url = new URL("../.tools/bin/", import.meta.url);
  return url.protocol === "file:" ? decodeURIComponent(url.pathname) : undefined;
}

function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    // Without --allow-env the default locations still work.
    return undefined;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Resolves the `nats-server` executable, the one place that decides which
 * server the embedded server and the tests run: `KVEDGE_NATS_SERVER`, else
 * `NATS_SERVER_BIN` (older name), else the newest present — the project's
 * `.tools/bin/nats-server` (built by `scripts/setup.sh` where Go is present),
 * else Debian's `/usr/sbin/nats-server`, else `nats-server` on `PATH`.
 *
 * @example
 * ```ts
 * import { natsServerBinary } from "./nats_binary.ts";
 * console.log(natsServerBinary());
 * ```
 */
export function natsServerBinary(): string {
  const fromEnv = envVar("KVEDGE_NATS_SERVER") ?? envVar("NATS_SERVER_BIN");
  if (fromEnv) return fromEnv;
  const tools = toolsBinDir();
  if (tools && isFile(`${tools}nats-server`)) return `${tools}nats-server`;
  if (isFile("/usr/sbin/nats-server")) return "/usr/sbin/nats-server";
  return "nats-server";
}

/**
 * Resolves the real `nats` CLI (natscli): `KVEDGE_NATS_CLI`, else the
 * project's `.tools/bin/nats`, else `undefined` (not installed; a `nats`
 * on `PATH` is not used, since its version is unknown).
 *
 * @example
 * ```ts
 * import { natsCliBinary } from "./nats_binary.ts";
 * console.log(natsCliBinary() ?? "no nats CLI");
 * ```
 */
export function natsCliBinary(): string | undefined {
  const fromEnv = envVar("KVEDGE_NATS_CLI");
  if (fromEnv) return fromEnv;
  const tools = toolsBinDir();
  if (tools && isFile(`${tools}nats`)) return `${tools}nats`;
  return undefined;
}

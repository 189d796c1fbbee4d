/**
 * Cloudflare's runtime on loopback, for the workerd test
 * (tests/runtimes/workerd_test.ts) and benchmark (scripts/bench/workerd.ts):
 * the workerd binary of the npm package ({@link workerdBinary}), a worker
 * bundled for it ({@link bundleWorker}), the config that serves it with a
 * Durable Object over a nats-server's WebSocket port ({@link workerdConfig}),
 * and a started workerd that is killed by PID ({@link startWorkerd}).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait_for.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The workerd binary of the npm package (`workerd` in deno.json, installed by
 * `deno install` / scripts/setup.sh) and the newest compatibility date it knows.
 *
 * @example
 * ```ts ignore
 * import { workerdBinary } from "./workerd.ts";
 * const { path, compatibilityDate } = await workerdBinary();
 * ```
 */
export async function workerdBinary(): Promise<{ path: string; compatibilityDate: string }> {
  const mod = await import("workerd") as unknown as {
    default: string | { default: string; compatibilityDate: string };
    compatibilityDate?: string;
  };
  const path = typeof mod.default === "string" ? mod.default : mod.default.default;
  const compatibilityDate = mod.compatibilityDate ??
    (typeof mod.default === "string" ? undefined : mod.default.compatibilityDate);
  if (compatibilityDate === undefined) {
    throw new Error("the workerd package names no compatibility date");
  }
  return { path, compatibilityDate };
}

/**
 * Bundles `entry` into `out` for workerd: `deno bundle` for the browser
 * platform, `cloudflare:workers` left to the runtime. Throws with the
 * bundler's output if it fails.
 *
 * @example
 * ```ts ignore
 * import { bundleWorker } from "./workerd.ts";
 * await bundleWorker("tests/runtimes/_workerd_worker.ts", "/tmp/wd/worker.js");
 * ```
 */
export async function bundleWorker(entry: string, out: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--external",
      "cloudflare:workers",
      "-o",
      out,
      entry,
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`deno bundle failed: ${new TextDecoder().decode(stderr)}`);
}

/** Options of {@link workerdConfig}. */
export interface WorkerdConfigOptions {
  /** HTTP port on 127.0.0.1. */
  port: number;
  /** The nats-server's `ws://` URL (the `NATS_URL` binding). */
  natsUrl: string;
  /** The bucket served (the `BUCKET` binding). */
  bucket: string;
  /** The worker's compatibility date. */
  compatibilityDate: string;
  /** The Durable Object class the worker exports. Default `KvedgeEdge`. */
  objectClass?: string;
  /** The Durable Object namespace's unique key. */
  uniqueKey: string;
  /** The `WRITE_TOKEN` binding; omitted: none (the buckets are read-only). */
  writeToken?: string;
}

/**
 * A workerd config (capnp) that serves `worker.js` beside it on
 * 127.0.0.1:`port`, with outbound connections allowed to loopback only.
 *
 * @example
 * ```ts
 * import { workerdConfig } from "./workerd.ts";
 * const capnp = workerdConfig({
 *   port: 8787,
 *   natsUrl: "ws://127.0.0.1:8080",
 *   bucket: "config",
 *   compatibilityDate: "2025-01-01",
 *   uniqueKey: "example",
 * });
 * ```
 */
export function workerdConfig(o: WorkerdConfigOptions): string {
  const objectClass = o.objectClass ?? "KvedgeEdge";
  const token = o.writeToken === undefined
    ? ""
    : `\n    (name = "WRITE_TOKEN", text = "${o.writeToken}"),`;
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    # Outbound connections may reach loopback only: the nats-server.
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${o.port}", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "worker.js") ],
  compatibilityDate = "${o.compatibilityDate}",
  globalOutbound = "loopback",
  durableObjectNamespaces = [ (className = "${objectClass}", uniqueKey = "${o.uniqueKey}") ],
  durableObjectStorage = (inMemory = void),
  bindings = [
    (name = "NATS_URL", text = "${o.natsUrl}"),
    (name = "BUCKET", text = "${o.bucket}"),${token}
    (name = "KVEDGE", durableObjectNamespace = "${objectClass}"),
  ],
);
`;
}

/** A running workerd, killed by PID on dispose. */
export interface Workerd extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Everything it wrote to stdout and stderr so far. */
  readonly log: () => string;
}

/**
 * Starts `binary serve config` in `dir` and waits (30 s at most) until it
 * says it listens; its URL is the config's `127.0.0.1:<port>`. Killed by PID
 * on dispose, or at once if it does not come up.
 *
 * @example
 * ```ts ignore
 * import { startWorkerd, workerdBinary } from "./workerd.ts";
 * const { path } = await workerdBinary();
 * await using wd = await startWorkerd("/tmp/wd", path, "/tmp/wd/config.capnp");
 * await fetch(`${wd.url}/v1/buckets/config/keys/a`);
 * ```
 */
export async function startWorkerd(dir: string, binary: string, config: string): Promise<Workerd> {
  const child = new Deno.Command(binary, {
    args: ["serve", config],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const drain = (s: ReadableStream<Uint8Array>) =>
    s.pipeTo(new WritableStream({ write: (b) => void (output += decoder.decode(b)) }))
      .catch(() => {});
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const stop = async () => {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await drained;
  };
  try {
    const port = /127\.0\.0\.1:(\d+)/.exec(await Deno.readTextFile(config))![1];
    const url = `http://127.0.0.1:${port}`;
    let exited: Deno.CommandStatus | undefined;
    child.status.then((s) => exited = s);
    try {
      await waitFor(() => {
        if (exited !== undefined) throw new Error(`workerd exited with ${exited.code}`);
        return /Listening on/.test(output);
      }, { timeoutMs: 30_000, message: "workerd listens" });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${output}`, { cause: err });
    }
    return { url, log: () => output, [Symbol.asyncDispose]: stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

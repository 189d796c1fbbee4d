/**
 * The JSON result files of a benchmark run under `bench/results/`, with the
 * machine and versions they were measured on.
 *
 * @module
 */
import { natsServerBinary } from "../../host/nats_binary.ts";
import type { ScenarioResult } from "./_harness.ts";

async function commandOutput(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

function cpuModel(): string | undefined {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
  } catch {
    return undefined;
  }
}

function npmVersions(): Record<string, string> {
  const wanted = ["@nats-io/kv", "@nats-io/jetstream", "@nats-io/transport-node", "lru-cache"];
  const out: Record<string, string> = {};
  try {
    const lock = JSON.parse(Deno.readTextFileSync(new URL("../../deno.lock", import.meta.url)));
    for (const id of Object.keys(lock.npm ?? {})) {
      const at = id.lastIndexOf("@");
      const name = id.slice(0, at);
      if (wanted.includes(name) || ["hono", "ioredis"].includes(name)) {
        out[name] = id.slice(at + 1).split("_")[0]!;
      }
    }
  } catch {
    // No lock file: versions unknown.
  }
  return out;
}

/** Machine, runtime and dependency versions, recorded with every result. */
export async function machineInfo(): Promise<Record<string, unknown>> {
  const mem = Deno.systemMemoryInfo();
  return {
    date: new Date().toISOString(),
    hostname: Deno.hostname(),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuModel(),
    memoryTotalMB: Math.round(mem.total / 2 ** 20),
    loadavg: Deno.loadavg(),
    deno: Deno.version,
    // The binary the scenarios start (KVEDGE_NATS_SERVER, .tools/bin, Debian's), not PATH's.
    natsServer: await commandOutput(natsServerBinary(), ["--version"]),
    natsServerBinary: natsServerBinary(),
    wrk: await commandOutput("wrk", ["--version"]),
    gitCommit: await commandOutput("git", ["rev-parse", "--short", "HEAD"]),
    npm: npmVersions(),
  };
}

/** Writes `<dir>/<name>.json` with machine info, parameters, rows and raw figures. */
export async function writeResult(
  dir: string,
  result: ScenarioResult,
  machine: Record<string, unknown>,
  command: string,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${result.name}.json`;
  const body = { command, machine, ...result };
  await Deno.writeTextFile(path, JSON.stringify(body, null, 2) + "\n");
  return path;
}

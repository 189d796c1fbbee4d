/**
 * The embedded `nats-server` of `deno task serve` when no `NATS_URL` is given:
 * JetStream on, store under `<dataDir>/nats`, free loopback ports for TCP and
 * WebSocket clients (so a browser or an isolate runtime can try it too), and a
 * record in `<dataDir>/nats/embedded.json` so the `kv` CLI can find it and a
 * later run can clean up after a crashed one.
 *
 * @module
 */

import { resolve } from "node:path";
import { UnavailableError } from "../src/errors.ts";
import { delay } from "../src/async.ts";
import { type NatsServerProcess, startNatsServer } from "./nats_server.ts";

/** Options of {@linkcode startEmbedded}. */
export interface EmbeddedOptions {
  /** Directory for kvedge's local data; the server's store is `<dataDir>/nats`. Default `".data"`. */
  dataDir?: string;
  /** Path of the `nats-server` executable. Default: as {@linkcode startNatsServer} resolves it. */
  binary?: string;
  /** How long to wait for the server to be ready, in milliseconds. Default `15000`. */
  readyTimeoutMs?: number;
  /** Aborts the start. */
  signal?: AbortSignal;
}

/** The record written to `<dataDir>/nats/embedded.json` while the server runs. */
export interface EmbeddedInfo {
  /** PID of the `nats-server` process. */
  pid: number;
  /** Client URL, `"nats://127.0.0.1:<port>"`. */
  url: string;
  /** Client port. */
  port: number;
  /** WebSocket client URL, `"ws://127.0.0.1:<port>"` (absent in records of older versions). */
  wsUrl?: string;
  /** When the server was started (ISO 8601). */
  startedAt: string;
  /** PID of the process that started it and is expected to stop it. */
  ownerPid: number;
}

/** A running embedded server; `close()` stops it and removes its record. */
export interface EmbeddedServer extends AsyncDisposable {
  /** Client URL, `"nats://127.0.0.1:<port>"`. */
  readonly url: string;
  /** Client port. */
  readonly port: number;
  /** WebSocket client URL, `"ws://127.0.0.1:<port>"` (plain WebSocket, loopback only). */
  readonly wsUrl: string;
  /** PID of the `nats-server` process. */
  readonly pid: number;
  /** Absolute path of the server's store directory, `<dataDir>/nats`. */
  readonly storeDir: string;
  /** Absolute path of the server's log file. */
  readonly logFile: string;
  /** Stops the server (SIGTERM, then SIGKILL) and removes `embedded.json`. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the embedded server. A record left by an earlier run is dealt with
 * first: if the run that wrote it is gone, its `nats-server` (if still alive)
 * is killed and the record removed; if that run is still alive, starting a
 * second server on the same store is refused.
 *
 * The server is also stopped when this process unloads, so a worker that
 * exits without `close()` leaves no server behind.
 *
 * @example
 * ```ts ignore
 * import { startEmbedded } from "./embedded.ts";
 * await using nats = await startEmbedded({ dataDir: ".data" });
 * console.log(nats.url);
 * ```
 */
export async function startEmbedded(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const dataDir = options.dataDir ?? ".data";
  if (typeof dataDir !== "string" || dataDir === "") {
    throw new TypeError('Cannot start embedded nats-server: "dataDir" must be a non-empty path');
  }
  const storeDir = resolve(dataDir, "nats");
  const infoFile = `${storeDir}/embedded.json`;
  await clearStale(storeDir, infoFile);
  const process = await startNatsServer({
    storeDir,
    binary: options.binary,
    readyTimeoutMs: options.readyTimeoutMs,
    signal: options.signal,
    serverName: "kvedge_embedded",
    websocketPort: 0,
  });
  const info: EmbeddedInfo = {
    pid: process.pid,
    url: process.url,
    port: process.port,
    wsUrl: process.websocketUrl,
    startedAt: new Date().toISOString(),
    ownerPid: Deno.pid,
  };
  try {
    await Deno.writeTextFile(infoFile, JSON.stringify(info, null, 2) + "\n");
  } catch (err) {
    await process.stop();
    throw err;
  }
  return new Embedded(process, infoFile);
}

/**
 * The URL of the embedded server recorded under `dataDir`, if that server is
 * still running; `undefined` otherwise.
 *
 * @example
 * ```ts ignore
 * import { findEmbedded } from "./embedded.ts";
 * const url = await findEmbedded(".data") ?? "nats://127.0.0.1:4222";
 * ```
 */
export async function findEmbedded(dataDir = ".data"): Promise<string | undefined> {
  const storeDir = resolve(dataDir, "nats");
  const info = await readInfo(`${storeDir}/embedded.json`);
  if (!info) return undefined;
  return (await isOurServer(info.pid, storeDir)) ? info.url : undefined;
}

class Embedded implements EmbeddedServer {
  readonly #process: NatsServerProcess;
  readonly #infoFile: string;
  readonly #onUnload: () => void;
  #closed = false;

  constructor(process: NatsServerProcess, infoFile: string) {
    this.#process = process;
    this.#infoFile = infoFile;
    this.#onUnload = () => {
      if (!this.#process.running) return;
      // Best effort while this process goes away; the next run cleans up the rest.
      try {
        Deno.kill(this.#process.pid, "SIGTERM");
      } catch { /* already gone */ }
      try {
        Deno.removeSync(this.#infoFile);
      } catch { /* already gone */ }
    };
    globalThis.addEventListener("unload", this.#onUnload);
  }

  get url(): string {
    return this.#process.url;
  }
  get port(): number {
    return this.#process.port;
  }
  get wsUrl(): string {
    return this.#process.websocketUrl!;
  }
  get pid(): number {
    return this.#process.pid;
  }
  get storeDir(): string {
    return this.#process.storeDir;
  }
  get logFile(): string {
    return this.#process.logFile;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    globalThis.removeEventListener("unload", this.#onUnload);
    const pid = this.#process.pid;
    await this.#process.stop();
    // Only our own record: a later run may already have written its own.
    const info = await readInfo(this.#infoFile);
    if (info?.pid === pid) await removeFile(this.#infoFile);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function clearStale(storeDir: string, infoFile: string): Promise<void> {
  const info = await readInfo(infoFile);
  if (!info) {
    await removeFile(infoFile);
    return;
  }
  if (info.ownerPid !== Deno.pid && await cmdlineHas(info.ownerPid, "deno")) {
    if (await isOurServer(info.pid, storeDir)) {
      throw new UnavailableError(
        `Cannot start embedded nats-server: process ${info.ownerPid} already runs one on ` +
          `${storeDir} (${info.url})`,
      );
    }
  }
  if (await isOurServer(info.pid, storeDir)) {
    try {
      Deno.kill(info.pid, "SIGKILL");
    } catch {
      // Exited on its own meanwhile.
    }
    // A killed process stays in /proc until its parent (gone) is replaced by init reaping it.
    const deadline = Date.now() + 5_000;
    while (await isOurServer(info.pid, storeDir) && Date.now() < deadline) {
      await delay(20);
    }
  }
  await removeFile(infoFile);
}

/** Whether `pid` is a live nats-server started with the config in `storeDir` (not one that reused the PID). */
async function isOurServer(pid: number, storeDir: string): Promise<boolean> {
  const cmdline = await readCmdline(pid);
  if (cmdline === undefined) return false;
  if (!cmdline.some((arg) => arg.endsWith("nats-server"))) return false;
  if (!cmdline.includes(`${storeDir}/nats-server.conf`)) return false;
  return !(await isZombie(pid));
}

async function cmdlineHas(pid: number, needle: string): Promise<boolean> {
  const cmdline = await readCmdline(pid);
  return cmdline?.some((arg) => arg.includes(needle)) ?? false;
}

async function readCmdline(pid: number): Promise<string[] | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return raw.split("\0").filter((arg) => arg !== "");
  } catch {
    return undefined;
  }
}

async function isZombie(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

async function readInfo(path: string): Promise<EmbeddedInfo | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text);
    if (typeof value?.pid !== "number" || typeof value?.url !== "string") return undefined;
    return {
      pid: value.pid,
      url: value.url,
      port: Number(value.port),
      ...(typeof value.wsUrl === "string" ? { wsUrl: value.wsUrl } : {}),
      startedAt: String(value.startedAt),
      ownerPid: typeof value.ownerPid === "number" ? value.ownerPid : 0,
    };
  } catch {
    return undefined;
  }
}

async function removeFile(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * The servers the HTTP bench (`http.ts`) compares, started as processes on
 * free ports and watched until they serve: the edge worker on one isolate
 * and on two, the bare `Deno.serve` variants (`_bare_http.ts`), and Hono +
 * ioredis cache-aside (this module, run with `--child hono`).
 *
 * @module
 */
import { Hono } from "hono";
import { Redis } from "ioredis";
import { freePort } from "../../host/free_port.ts";
import { delay } from "../../src/async.ts";
import { childArgs, DENO, ROOT, spawn, type Spawned } from "./_processes.ts";
import { type BareKind, KEY, valueJson } from "./_bare_http.ts";

/** The local Redis the Hono + ioredis variant caches in. */
export const REDIS_URL = "redis://127.0.0.1:6379";

/** Whether Redis answers on {@link REDIS_URL}. */
export async function redisUp(): Promise<boolean> {
  const r = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** The servers compared. */
export type Variant =
  | "edge"
  | "bare"
  | "bare_headers"
  | "bare_headers_inm"
  | "hono_redis"
  | "edge_w2"
  | "bare_w2"
  | "bare_headers_w2";

/** The bare variants on one isolate. */
export const BARES: BareKind[] = ["bare", "bare_headers", "bare_headers_inm"];

/** A server process exited before it served: its port may have been taken since it was picked. */
export class ExitedBeforeServing extends Error {
  /** The process's exit code. */
  readonly code: number;
  constructor(what: string, code: number, stderr: string) {
    super(`${what} exited (${code}) before serving: ${stderr}`);
    this.name = "ExitedBeforeServing";
    this.code = code;
  }
}

/** Waits until `url` answers 200 with the expected body. */
async function waitServing(url: string, proc: Spawned, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    const status = await Promise.race([proc.child.status, delay(0).then(() => undefined)]);
    if (status) throw new ExitedBeforeServing(what, status.code, proc.stderrTail());
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (res.status === 200 && JSON.parse(body).id === 1) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await delay(100);
  }
  throw new Error(`${what} did not serve ${url} within 60 s (last: ${last})`);
}

/** Attempts at starting one server, each on a freshly picked port. */
const START_ATTEMPTS = 3;

/** The running servers, each variant's URL and PID; `stop()` ends them all. */
export class HttpServers {
  readonly #path: string;
  readonly #procs: Spawned[] = [];
  readonly urls = {} as Record<Variant, string>;
  readonly pids = {} as Record<Variant, number>;

  /** `path`: the URL path every server answers (the key of the bench's bucket). */
  constructor(path: string) {
    this.#path = path;
  }

  /**
   * Starts variant `v` on a free port and waits until it serves. A process
   * that exits first is started again on another port: the port was free
   * when picked, but another process may have taken it since (a bind that
   * fails is such an exit; any other cause fails every attempt and is
   * thrown).
   */
  async start(v: Variant, what: string, run: (port: number) => Spawned): Promise<void> {
    for (let attempt = 1;; attempt++) {
      const port = freePort();
      const proc = run(port);
      this.#procs.push(proc);
      const url = `http://127.0.0.1:${port}${this.#path}`;
      try {
        await waitServing(url, proc, what);
      } catch (err) {
        if (err instanceof ExitedBeforeServing && attempt < START_ATTEMPTS) continue;
        throw err;
      }
      this.pids[v] = proc.child.pid;
      this.urls[v] = url;
      return;
    }
  }

  /** The edge worker (`workers/edge.ts`, replica mode) on one isolate and on two. */
  async startEdges(natsUrl: string, bucket: string): Promise<void> {
    for (const v of ["edge", "edge_w2"] as const) {
      await this.start(
        v,
        v === "edge" ? "edge worker" : "edge worker, 2 isolates",
        (port) =>
          spawn(DENO, ["run", "-A", "--config", `${ROOT}/deno.json`, `${ROOT}/workers/edge.ts`], {
            env: {
              NATS_URL: natsUrl,
              KVEDGE_BUCKETS: `${bucket}:replica`,
              PORT: String(port),
              KVEDGE_WORKERS: v === "edge" ? "1" : "2",
            },
          }),
      );
    }
  }

  /**
   * Every bare server: `deno serve` of one module, on one isolate or
   * (`--parallel`, DENO_JOBS=2) on two, whose isolates share the port as the
   * edge worker's do: the same code and the same way to run it.
   */
  async startBares(bucket: string): Promise<void> {
    const bareRuns = [
      ...BARES.map((kind) => [kind, kind, 1] as const),
      ["bare_w2", "bare", 2] as const,
      ["bare_headers_w2", "bare_headers", 2] as const,
    ];
    for (const [v, kind, jobs] of bareRuns) {
      await this.start(v, `${v} server`, (port) =>
        spawn(DENO, [
          "serve",
          ...(jobs > 1 ? ["--parallel"] : []),
          "-A",
          "--config",
          `${ROOT}/deno.json`,
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          new URL("./_bare_http.ts", import.meta.url).pathname,
        ], {
          env: { DENO_JOBS: String(jobs), KVEDGE_BENCH_BARE: kind, KVEDGE_BENCH_BUCKET: bucket },
        }));
    }
  }

  /** Hono + ioredis cache-aside, with the value already in Redis under `redisKey`. */
  async startHonoRedis(redisKey: string): Promise<void> {
    const r = new Redis(REDIS_URL);
    await r.set(redisKey, valueJson());
    r.disconnect();
    await this.start("hono_redis", "Hono+ioredis server", (port) =>
      spawn(DENO, [
        "run",
        "-A",
        "--config",
        `${ROOT}/deno.json`,
        import.meta.filename!,
        "--child",
        "hono",
        "--port",
        String(port),
        "--redis-key",
        redisKey,
      ]));
  }

  /** Stops every process started, in order. */
  async stop(): Promise<void> {
    for (const p of this.#procs) await p.stop();
  }
}

/**
 * The edge and the bare server with six headers must send the same header
 * names (values differ: revision, dates), or the second ratio compares unlike
 * answers.
 */
export async function sameHeaders(edgeUrl: string, bareUrl: string): Promise<void> {
  const names = async (url: string) => {
    const res = await fetch(url);
    await res.body?.cancel();
    return [...res.headers.keys()].filter((k) => k !== "date" && k !== "content-length").join();
  };
  const [edge, bare] = [await names(edgeUrl), await names(bareUrl)];
  if (edge !== bare) {
    throw new Error(`the bare server sends headers ${bare}, the edge ${edge}: update bareServer()`);
  }
}

// ---- child servers -------------------------------------------------------------------------

function honoRedisServer(port: number, redisKey: string): void {
  const redis = new Redis(REDIS_URL);
  // The origin behind the cache; never reached while the key is in Redis.
  const origin = new Map<string, string>([[KEY, valueJson()]]);
  const app = new Hono();
  app.get("/v1/buckets/:bucket/keys/:key", async (c) => {
    const key = c.req.param("key");
    const cacheKey = redisKey.slice(0, redisKey.length - KEY.length) + key;
    let value = await redis.get(cacheKey);
    if (value === null) {
      value = origin.get(key) ?? null;
      if (value === null) return c.text("not found", 404);
      await redis.set(cacheKey, value, "EX", 300);
    }
    return c.body(value, 200, { "content-type": "application/json" });
  });
  Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, app.fetch);
}

if (import.meta.main) {
  const a = childArgs(Deno.args);
  const port = Number(a.port);
  if (a.child === "hono") honoRedisServer(port, a["redis-key"]!);
}

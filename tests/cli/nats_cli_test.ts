import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import {
  type Cache,
  type CacheEvent,
  type CacheOptions,
  DecodeError,
  openCache,
} from "../../mod.ts";
import { createApp } from "../../http.ts";
import { natsCliBinary } from "../../host/nats_binary.ts";
import { PER_KEY_TTL_VERSION, versionAtLeast } from "../../src/server_version.ts";
import { connectTo, type ServerHandle, startServer, uniqueBucket, waitFor } from "../_setup.ts";

// Interop with the real `nats` CLI (natscli, built into .tools/bin by
// scripts/setup.sh where Go is present, or named by KVEDGE_NATS_CLI).
const NATS = natsCliBinary();
if (NATS === undefined) {
  console.warn(
    "nats_cli_test: SKIPPED — no nats CLI (run scripts/setup.sh with Go present, or set KVEDGE_NATS_CLI)",
  );
}

const WORKER = fileURLToPath(new URL("../../workers/edge.ts", import.meta.url));
const KV_SCRIPT = fileURLToPath(new URL("../../scripts/kv.ts", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `nats` against `server` with no context and a private home. */
async function nats(server: ServerHandle, home: string, ...args: string[]): Promise<Run> {
  const out = await new Deno.Command(NATS!, {
    args: ["--server", server.url, "--no-context", "--timeout=10s", ...args],
    env: { HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: "1", NATS_URL: "" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Like {@linkcode nats}, but fails the test with the CLI's output if it exits non-zero. */
async function natsOk(server: ServerHandle, home: string, ...args: string[]): Promise<string> {
  const r = await nats(server, home, ...args);
  assert.equal(r.code, 0, `nats ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A running process whose output lines are collected as they come. */
interface Running extends AsyncDisposable {
  lines: string[];
  text(): string;
}

function spawnLines(cmd: string, args: string[], env: Record<string, string>): Running {
  const child = new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    if (buf) lines.push(buf);
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => child.status);
  return {
    lines,
    text: () => lines.join("\n"),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await done;
    },
  };
}

Deno.test({
  name: "the real nats CLI and kvedge share buckets",
  // Skipped on a machine without natscli, never in CI: there a missing CLI fails.
  ignore: NATS === undefined && Deno.env.get("CI") !== "true",
  async fn(t) {
    assert.ok(NATS !== undefined, "CI=true but natscli is not installed (.tools/bin/nats)");
    await using srv = await startServer();
    const home = await Deno.makeTempDir({ prefix: "kvedge_natscli_" });
    const nc = await connectTo(srv);
    const open = <T = unknown>(extra: Partial<CacheOptions<T>> = {}): Promise<Cache<T>> =>
      openCache<T>({
        connection: nc,
        bucket: uniqueBucket(),
        local: { maxItems: 1000 },
        ...extra,
      } as CacheOptions<T>);
    try {
      await t.step("a kvedge bucket: nats kv ls, get, status, history", async () => {
        await using c = await open<{ n: number }>({ create: { history: 5 } });
        await c.set("user.1", { n: 1 });
        await c.set("user.1", { n: 2 });
        const names = (await natsOk(srv, home, "kv", "ls", "--names")).split(/\s+/);
        assert.ok(names.includes(c.bucket), `kv ls lists ${c.bucket}`);
        assert.equal(await natsOk(srv, home, "kv", "get", c.bucket, "user.1", "--raw"), '{"n":2}');
        const status = await natsOk(srv, home, "kv", "status", c.bucket);
        assert.match(status, /History Kept: 5/);
        assert.match(status, new RegExp(`JetStream Stream: KV_${c.bucket}`));
        const history = await natsOk(srv, home, "kv", "history", c.bucket, "user.1");
        assert.match(history, /│ user\.1 │\s+1 │ PUT\s+│/);
        assert.match(history, /│ user\.1 │\s+2 │ PUT\s+│.*\{"n":2\}/);
      });

      await t.step("nats kv put and del reach a running edge at once", async () => {
        await using c = await open<{ n: number }>({ create: true, mode: "replica" });
        await c.ready();
        await natsOk(srv, home, "kv", "put", c.bucket, "a", '{"n":7}');
        await waitFor(() => c.peek("a")?.n === 7, { message: "the CLI's put reaches the edge" });
        await natsOk(srv, home, "kv", "del", c.bucket, "a", "--force");
        await waitFor(() => c.peek("a") === undefined, { message: "the CLI's del reaches it" });
        assert.equal(await c.get("a"), undefined);
        await natsOk(srv, home, "kv", "put", c.bucket, "b", '{"n":1}');
        await natsOk(srv, home, "kv", "purge", c.bucket, "b", "--force");
        await waitFor(async () => (await c.history("b")).length === 1, {
          message: "the CLI's purge leaves only its marker",
        });
        assert.equal(await c.get("b"), undefined);
      });

      await t.step("nats kv watch sees kvedge's writes and deletes", async () => {
        await using c = await open<string>({ create: true });
        await using watch = spawnLines(NATS!, [
          "--server",
          srv.url,
          "--no-context",
          "kv",
          "watch",
          c.bucket,
        ], { HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: "1", NATS_URL: "" });
        await c.set("w", "one");
        await waitFor(() => /PUT .* > w: "one"/.test(watch.text()), {
          timeoutMs: 20_000,
          message: `watch shows the put; got ${watch.text()}`,
        });
        await c.delete("w");
        await waitFor(() => /DELETE .* > w/.test(watch.text()), {
          timeoutMs: 20_000,
          message: `watch shows the delete; got ${watch.text()}`,
        });
      });

      await t.step(
        "values put by the CLI: JSON is read, other text is a DecodeError (HTTP 502)",
        async () => {
          await using c = await open<unknown>({ create: true });
          const events: CacheEvent[] = [];
          const stop = new AbortController();
          const collecting = (async () => {
            for await (const e of c.events({ signal: stop.signal })) events.push(e);
          })();
          await natsOk(srv, home, "kv", "put", c.bucket, "json", '{"ok":true}');
          await natsOk(srv, home, "kv", "put", c.bucket, "quoted", '"hello"');
          await natsOk(srv, home, "kv", "put", c.bucket, "bare", "hello");
          assert.deepEqual(await c.get("json"), { ok: true });
          assert.equal(await c.get("quoted"), "hello");
          await assert.rejects(
            c.get("bare"),
            (e) => e instanceof DecodeError && e.key === "bare" && e.code === "DECODE",
          );
          const app = createApp({ buckets: { b: { cache: c } } });
          const res = await app.request("/v1/buckets/b/keys/bare");
          assert.equal(res.status, 502);
          assert.equal((await res.json()).code, "undecodable_value");
          await waitFor(
            () => events.find((e) => e.type === "rejected" && e.key === "bare"),
            { message: "a rejected event names the non-JSON key" },
          );
          assert.ok(c.stats().rejected >= 1);
          stop.abort();
          await collecting;
          // With a text codec the same bytes are a value.
          await using text = await open<string>({
            bucket: c.bucket,
            codec: {
              contentType: "text/plain; charset=utf-8",
              encode: (s: string) => new TextEncoder().encode(s),
              decode: (b: Uint8Array) => new TextDecoder().decode(b),
            },
          });
          assert.equal(await text.get("bare"), "hello");
        },
      );

      await t.step("a bucket made by nats kv add is served by the edge worker", async () => {
        const bucket = uniqueBucket();
        await natsOk(srv, home, "kv", "add", bucket, "--history=3");
        await natsOk(srv, home, "kv", "put", bucket, "greeting", '{"hi":"there"}');
        await using worker = spawnLines(Deno.execPath(), ["run", "-A", WORKER], {
          NATS_URL: srv.url,
          KVEDGE_BUCKETS: `${bucket}:replica:ro`,
          PORT: "0",
          HOME: home,
          NO_COLOR: "1",
        });
        const listening = await waitFor(() => {
          for (const line of worker.lines) {
            try {
              const l = JSON.parse(line);
              if (l.msg === "listening") return String(l.url);
            } catch {
              // Not a log line.
            }
          }
          return undefined;
        }, { timeoutMs: 60_000, message: `the worker listens; output: ${worker.text()}` });
        const url = `${listening}/v1/buckets/${bucket}/keys/greeting`;
        const res = await waitFor(async () => {
          const r = await fetch(url);
          if (r.status === 200) return r;
          await r.body?.cancel();
          return undefined;
        }, { timeoutMs: 30_000, message: "the worker serves the CLI's key" });
        assert.deepEqual(await res.json(), { hi: "there" });
        await natsOk(srv, home, "kv", "put", bucket, "greeting", '{"hi":"again"}');
        await waitFor(async () => {
          const r = await fetch(url);
          return r.status === 200 && (await r.json()).hi === "again";
        }, { timeoutMs: 20_000, message: "the CLI's update reaches the worker" });
      });

      if (versionAtLeast(nc.info?.version, PER_KEY_TTL_VERSION)) {
        await t.step(
          "nats kv create --ttl on a --marker-ttl bucket expires at the edge",
          async () => {
            const bucket = uniqueBucket();
            await natsOk(srv, home, "kv", "add", bucket, "--marker-ttl=1s");
            await using c = await open<string>({ bucket, mode: "replica" });
            await c.ready();
            await natsOk(srv, home, "kv", "create", bucket, "tmp", '"x"', "--ttl=1s");
            await waitFor(() => c.peek("tmp") === "x", { message: "the edge sees the key" });
            await waitFor(() => c.peek("tmp") === undefined, {
              timeoutMs: 20_000,
              message: "the edge drops the key when its TTL marker arrives",
            });
            // And kvedge's own TTL writes show in the CLI as gone once expired.
            await c.set("mine", "y", { ttlMs: 1000 });
            await waitFor(async () => {
              const r = await nats(srv, home, "kv", "get", bucket, "mine", "--raw");
              return r.code !== 0;
            }, { timeoutMs: 20_000, message: "nats kv get no longer finds the expired key" });
          },
        );
      }

      await t.step(
        "buckets made by kvedge (openCache, deno task kv add) are the stream nats kv add makes",
        async () => {
          // Settings each tool can express, and the flags that say them to natscli.
          const cases: { create: Record<string, unknown>; kvFlags: string[]; cli: string[] }[] = [
            { create: { history: 10 }, kvFlags: ["--history", "10"], cli: ["--history=10"] },
            {
              create: { history: 1, ttlMs: 30_000, storage: "memory" },
              kvFlags: ["--history", "1", "--ttl", "30s", "--storage", "memory"],
              cli: ["--ttl=30s", "--storage=memory"],
            },
            {
              create: { history: 5, ttlMs: 3_600_000, maxBytes: 1 << 20, maxValueSize: 1024 },
              kvFlags: [
                "--history",
                "5",
                "--ttl",
                "1h",
                "--max-bucket-size",
                "1048576",
                "--max-value-size",
                "1024",
              ],
              cli: [
                "--history=5",
                "--ttl=1h",
                "--max-bucket-size=1048576",
                "--max-value-size=1024",
              ],
            },
          ];
          if (versionAtLeast(nc.info?.version, PER_KEY_TTL_VERSION)) {
            cases.push({
              create: { history: 2, markerTtlMs: 5_000 },
              kvFlags: ["--history", "2", "--marker-ttl", "5s"],
              cli: ["--history=2", "--marker-ttl=5s"],
            });
          }
          const config = async (bucket: string) => {
            const c = JSON.parse(await natsOk(srv, home, "stream", "info", "-j", `KV_${bucket}`))
              .config;
            // What differs by name only.
            delete c.name;
            delete c.subjects;
            return c;
          };
          for (const { create, kvFlags, cli } of cases) {
            const byCli = uniqueBucket("cli");
            await natsOk(srv, home, "kv", "add", byCli, ...cli);
            const byCache = uniqueBucket("lib");
            const c = await openCache({
              connection: nc,
              bucket: byCache,
              create,
              local: { maxItems: 10 },
            } as CacheOptions<unknown>);
            await c.close();
            const byTask = uniqueBucket("task");
            const task = await new Deno.Command(Deno.execPath(), {
              args: ["run", "-A", KV_SCRIPT, "add", byTask, ...kvFlags],
              env: { NATS_URL: srv.tcpUrl, NO_COLOR: "1" },
              stdin: "null",
              stdout: "piped",
              stderr: "piped",
            }).output();
            assert.equal(task.code, 0, new TextDecoder().decode(task.stderr));
            const want = await config(byCli);
            assert.deepEqual(
              await config(byCache),
              want,
              `openCache create ${JSON.stringify(create)}`,
            );
            assert.deepEqual(await config(byTask), want, `deno task kv add ${kvFlags.join(" ")}`);
            // So natscli accepts kvedge's buckets as its own (it failed with "stream name
            // already in use" while deny_delete differed).
            await natsOk(srv, home, "kv", "add", byCache, ...cli);
            await natsOk(srv, home, "kv", "add", byTask, ...cli);
          }
        },
      );

      await t.step("kvedge reads what the CLI wrote in a bucket kvm opens too", async () => {
        // Both speak the standard layout: a raw @nats-io/kv client agrees.
        const bucket = uniqueBucket();
        await natsOk(srv, home, "kv", "add", bucket);
        await natsOk(srv, home, "kv", "put", bucket, "k", "[1,2]");
        const kv = await new Kvm(nc).open(bucket);
        assert.equal((await kv.get("k"))?.string(), "[1,2]");
        await using c = await open<number[]>({ bucket });
        assert.deepEqual(await c.get("k"), [1, 2]);
      });
    } finally {
      await nc.close();
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * The paper cuts a newcomer met following the docs: help flags, the defaults
 * of `kv add` against the bucket `deno task serve` made, a value the codec
 * refuses, the example files the docs name, which server the CLI uses, SIGHUP,
 * boolean environment variables and `GET /`.
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { DecodeError, openCache } from "../../mod.ts";
import { createApp } from "../../http.ts";
import { parseEdgeConfig } from "../../host/edge_config.ts";
import { BOOLEAN_WORDS } from "../../host/env_vars.ts";
import { connectTo, spawnEdge, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CONFIG = `${ROOT}deno.json`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A <script> ...args` (script relative to the repository). */
async function run(
  script: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, `${ROOT}${script}`, ...args],
    cwd: opts.cwd ?? ROOT,
    env: { NATS_URL: "", NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // A command that should exit but serves forever fails the test instead of hanging it.
    signal: AbortSignal.timeout(120_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

Deno.test("--help of serve and project prints help and exits 0", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_help_" });
  try {
    await t.step("deno task serve --help prints usage instead of starting", async () => {
      const r = await run("workers/edge.ts", ["--help"], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^usage: deno task serve/);
      assert.match(r.stdout, /NATS_URL/);
      assert.match(r.stdout, /KVEDGE_BUCKETS/);
      assert.equal(r.stderr, "");
      // Nothing was started: no data directory.
      await assert.rejects(Deno.stat(`${dir}/.data`));
    });
    await t.step("deno task serve with an argument refuses it (exit 2)", async () => {
      const r = await run("workers/edge.ts", ["--port", "9000"], { cwd: dir });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unexpected argument/);
      await assert.rejects(Deno.stat(`${dir}/.data`));
    });
    await t.step("deno task project --help lists every flag", async () => {
      const r = await run("workers/projector.ts", ["--help"], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^usage: deno task project/);
      for (
        const flag of ["--from-start", "--until-caught-up", "--metrics-port", "--on-map-error"]
      ) {
        assert.match(r.stdout, new RegExp(`^\\s+${flag}`, "m"), `${flag} is explained`);
      }
      assert.match(r.stdout, /NATS_URL/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boolean environment variables share one parser", async (t) => {
  const vars = [
    "KVEDGE_ANONYMOUS_WRITES",
    "KVEDGE_CREATE_BUCKETS",
    "KVEDGE_LOG_REQUESTS",
    "KVEDGE_CONNECTION_GATE",
  ];
  const pick = (name: string, env: Record<string, string>) => {
    const c = parseEdgeConfig(env);
    return name === "KVEDGE_ANONYMOUS_WRITES"
      ? c.anonymousWrites
      : name === "KVEDGE_CREATE_BUCKETS"
      ? c.createBuckets
      : name === "KVEDGE_CONNECTION_GATE"
      ? c.connectionGate
      : c.logRequests;
  };
  await t.step("true/false, 1/0, yes/no, on/off in any case", () => {
    for (const name of vars) {
      for (
        const [word, value] of [["true", true], ["1", true], ["YES", true], ["On", true]] as const
      ) {
        assert.equal(pick(name, { [name]: word }), value, `${name}=${word}`);
      }
      for (const word of ["false", "0", "no", "OFF"]) {
        assert.equal(pick(name, { [name]: word }), false, `${name}=${word}`);
      }
    }
  });
  await t.step("anything else is refused, naming the variable and the accepted words", () => {
    for (const name of vars) {
      for (const word of ["banana", "2", "maybe", "enabled"]) {
        assert.throws(
          () => parseEdgeConfig({ [name]: word }),
          (e: unknown) =>
            e instanceof TypeError && e.message.includes(name) &&
            e.message.includes(BOOLEAN_WORDS) && !e.message.includes(word),
          `${name}=${word}`,
        );
      }
    }
  });
});

Deno.test("a stored value the codec refuses is an error, not an absent key", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const bucket = uniqueBucket();
    await using cache = await openCache<unknown>({
      connection: nc,
      bucket,
      create: true,
      local: { maxItems: 100 },
    });
    await cache.ready();
    const kv = await new Kvm(nc).open(bucket);
    await kv.put("greeting", "hello"); // not JSON: what `kv put demo greeting hello` stores

    await t.step("get() and getEntry() throw DecodeError, every time", async () => {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(cache.get("greeting"), (e: unknown) => {
          assert.ok(e instanceof DecodeError, String(e));
          assert.equal(e.code, "DECODE");
          assert.equal(e.key, "greeting");
          assert.match(e.message, /^Cannot get "greeting": the stored value at revision \d+/);
          return true;
        });
        await assert.rejects(cache.getEntry("greeting"), DecodeError);
      }
      assert.equal(cache.peek("greeting"), undefined, "peek() never serves it");
      assert.ok(cache.stats().rejected >= 1);
    });

    await t.step("the HTTP facade answers 502 undecodable_value, not 404", async () => {
      const app = createApp({ buckets: { [bucket]: { cache } } });
      const res = await app.request(`/v1/buckets/${bucket}/keys/greeting`);
      assert.equal(res.status, 502);
      assert.equal(res.headers.get("content-type"), "application/problem+json");
      const body = await res.json();
      assert.equal(body.code, "undecodable_value");
      assert.doesNotMatch(body.detail, /hello/, "the value is not echoed");
    });

    await t.step("a decodable value written over it is served again", async () => {
      await kv.put("greeting", JSON.stringify("hello"));
      assert.equal(await waitFor(() => cache.get("greeting").catch(() => undefined)), "hello");
    });
  } finally {
    await nc.close();
  }
});

Deno.test("the kv and seed CLIs say which server they use when nobody named one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_cli_default_" });
  try {
    // Whether or not something listens on 4222, the notice comes first.
    const kv = await run("scripts/kv.ts", ["ls", "--timeout", "1s"], { cwd: dir });
    assert.match(
      kv.stderr.split("\n")[0]!,
      /^kv: using nats:\/\/127\.0\.0\.1:4222: no --server, no NATS_URL, no running `deno task serve`/,
    );
    const seed = await run("scripts/seed.ts", ["--bucket", "b", "--timeout", "1s", "-"], {
      cwd: dir,
    });
    assert.match(seed.stderr, /^seed: using nats:\/\/127\.0\.0\.1:4222: /);
    // Named servers need no notice.
    const named = await run("scripts/kv.ts", ["-s", "nats://127.0.0.1:1", "--timeout", "1s", "ls"]);
    assert.doesNotMatch(named.stderr, /using/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the docs' session against deno task serve: kv, seed, GET /, SIGHUP", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_newcomer_" });
  try {
    await using edge = spawnEdge(dir);
    const { url, nats } = await edge.listening();
    await waitFor(async () => {
      const r = await fetch(`${url}/readyz`);
      await r.body?.cancel();
      return r.ok;
    }, { timeoutMs: 30_000, message: "readyz is 200" });

    await t.step(
      "kv add demo agrees with the bucket serve made, and names the server",
      async () => {
        const r = await run("scripts/kv.ts", ["add", "demo"], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`using the embedded nats-server .* at ${nats}`));
        const seeded = await run("scripts/seed.ts", ["--bucket", "demo", "--generate", "3"], {
          cwd: dir,
        });
        assert.equal(seeded.code, 0, seeded.stderr);
        const nc = await connectTo(nats);
        try {
          const si = await (await jetstreamManager(nc)).streams.info("KV_demo");
          assert.equal(si.config.max_msgs_per_subject, 10);
        } finally {
          await nc.close();
        }
      },
    );

    await t.step("a non-JSON kv put is a clear 502 over HTTP, a JSON one is served", async () => {
      const bad = await run("scripts/kv.ts", ["put", "demo", "greeting", "hello"], { cwd: dir });
      assert.equal(bad.code, 0, bad.stderr);
      const r = await fetch(`${url}/v1/buckets/demo/keys/greeting`);
      assert.equal(r.status, 502);
      assert.equal((await r.json()).code, "undecodable_value");
      const good = await run("scripts/kv.ts", ["put", "demo", "greeting", '"hello"'], { cwd: dir });
      assert.equal(good.code, 0, good.stderr);
      const ok = await waitFor(async () => {
        const res = await fetch(`${url}/v1/buckets/demo/keys/greeting`);
        if (res.status !== 200) await res.body?.cancel();
        return res.status === 200 && res;
      }, { timeoutMs: 10_000, message: "the JSON value is served" });
      assert.equal(await ok.json(), "hello");
    });

    await t.step("the seed commands of docs/cli.md work from the checkout", async () => {
      const env = { NATS_URL: nats };
      for (
        const args of [
          ["--bucket", "demo", "examples/users.ndjson"],
          ["--bucket", "demo", "--key-column", "id", "examples/users.csv"],
          [
            "--bucket",
            "demo",
            "--dry-run",
            "--schema",
            "examples/user_schema.ts",
            "examples/users.ndjson",
          ],
        ]
      ) {
        const r = await run("scripts/seed.ts", args, { env });
        assert.equal(r.code, 0, `seed ${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stdout, /(seeded|validated) 2 keys/);
      }
      const user = await fetch(`${url}/v1/buckets/demo/keys/user.3`);
      assert.deepEqual(await user.json(), { name: "Grace", plan: "pro" });
    });

    await t.step("GET / is a small JSON index of the endpoints", async () => {
      const r = await fetch(`${url}/`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
      const index = await r.json();
      assert.equal(index.name, "kvedge");
      assert.doesNotMatch(JSON.stringify(index), /demo/, "no bucket is named without a token");
      const paths = Object.keys(index.endpoints);
      for (
        const p of [
          "/v1/buckets/{bucket}/keys/{key}",
          "/v1/buckets/{bucket}/watch",
          "/readyz",
          "/metrics",
        ]
      ) {
        assert.ok(paths.some((e) => e.endsWith(p)), `${p} is listed`);
      }
    });

    await t.step("SIGHUP shuts down like SIGTERM, embedded nats-server included", async () => {
      const info = JSON.parse(await Deno.readTextFile(`${dir}/.data/nats/embedded.json`));
      assert.ok(pidAlive(info.pid));
      edge.child.kill("SIGHUP");
      const status = await edge.exited;
      assert.equal(status.code, 0, edge.output());
      assert.ok(edge.lines.some((l) => l.msg === "shutting down" && l.signal === "SIGHUP"));
      await waitFor(() => !pidAlive(info.pid), { timeoutMs: 15_000, message: "nats-server gone" });
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/**
 * `deno task kv` (scripts/kv.ts) run as a subprocess against a real
 * nats-server: every subcommand, its output and exit codes, bad input, and
 * the standard KV layout that the real `nats kv` also reads.
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { startEmbedded } from "../../host/embedded.ts";
import { PER_KEY_TTL_VERSION, versionAtLeast } from "../../src/server_version.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCRIPT = `${ROOT}scripts/kv.ts`;
const CONFIG = `${ROOT}deno.json`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs the CLI with `args`; stdin is empty (not a terminal) unless given. */
async function kv(args: string[], opts: RunOptions = {}): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, SCRIPT, ...args],
    cwd: opts.cwd ?? ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NATS_URL: "", NO_COLOR: "1", ...opts.env },
  }).spawn();
  const writer = child.stdin.getWriter();
  if (opts.stdin !== undefined) await writer.write(new TextEncoder().encode(opts.stdin));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Asserts that the run failed with `code` and exactly one error line on stderr, no stack. */
function assertOneLineError(r: Run, code: number, pattern?: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one stderr line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^kv: error: /);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  if (pattern) assert.match(lines[0]!, pattern);
}

Deno.test("kv CLI", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const s = ["--server", server.url];
  try {
    await t.step(
      "add creates a bucket in the standard KV layout with the given limits",
      async () => {
        const b = uniqueBucket();
        const r = await kv([
          ...s,
          "add",
          b,
          "--history",
          "5",
          "--ttl",
          "1h",
          "--max-value-size",
          "1KiB",
          "--max-bytes",
          "1MB",
          "--storage",
          "memory",
          "--description",
          "demo bucket",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`Bucket Name: ${b}`));
        assert.match(r.stdout, /History Kept: 5/);
        assert.match(r.stdout, /Maximum Age: 1h/);
        const si = await jsm.streams.info(`KV_${b}`);
        assert.deepEqual(si.config.subjects, [`$KV.${b}.>`]);
        assert.equal(si.config.max_msgs_per_subject, 5);
        assert.equal(si.config.max_age, 3_600_000_000_000);
        assert.equal(si.config.max_msg_size, 1024);
        assert.equal(si.config.max_bytes, 1024 * 1024);
        assert.equal(si.config.storage, "memory");
        assert.equal(si.config.description, "demo bucket");
        assert.equal(si.config.allow_rollup_hdrs, true);
      },
    );

    await t.step("add is idempotent with equal settings and refuses different ones", async () => {
      const b = uniqueBucket();
      assert.equal((await kv([...s, "add", b, "--history", "3"])).code, 0);
      const again = await kv([...s, "--json", "add", b, "--history", "3"]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).history, 3);
      const other = await kv([...s, "add", b, "--history", "4"]);
      assertOneLineError(other, 1, /already exists with different settings \(history 3\)/);
    });

    await t.step(
      "put stores the argument, '-' or stdin; get prints it, --raw and --json too",
      async () => {
        const b = uniqueBucket();
        await kvm.create(b, { history: 5 });
        const p1 = await kv([...s, "put", b, "greeting", "hello"]);
        assert.equal(p1.code, 0, p1.stderr);
        assert.equal(p1.stdout.trim(), `${b} > greeting revision: 1`);
        const p2 = await kv([...s, "--json", "put", b, "greeting", "-"], { stdin: "from stdin" });
        assert.equal(p2.code, 0, p2.stderr);
        assert.deepEqual(JSON.parse(p2.stdout), { bucket: b, key: "greeting", revision: 2 });
        const p3 = await kv([...s, "put", b, "other"], { stdin: "no value argument" });
        assert.equal(p3.code, 0, p3.stderr);

        // Written where any KV client (and `nats kv`) reads it.
        const store = await kvm.open(b);
        assert.equal((await store.get("greeting"))?.string(), "from stdin");
        assert.equal((await store.get("other"))?.string(), "no value argument");

        const raw = await kv([...s, "get", b, "greeting", "--raw"]);
        assert.equal(raw.code, 0, raw.stderr);
        assert.equal(raw.stdout, "from stdin");
        const human = await kv([...s, "get", b, "greeting"]);
        assert.match(human.stdout, new RegExp(`^${b} > greeting revision: 2 created @ `));
        assert.match(human.stdout, /\n\nfrom stdin\n/);
        const old = await kv([...s, "get", b, "greeting", "--revision", "1", "--raw"]);
        assert.equal(old.stdout, "hello");
        const j = JSON.parse((await kv([...s, "get", b, "greeting", "--json"])).stdout);
        assert.equal(j.key, "greeting");
        assert.equal(j.revision, 2);
        assert.equal(j.operation, "PUT");
        assert.equal(j.value, "from stdin");

        await store.put("bin", new Uint8Array([0, 1, 2, 255]));
        const bin = JSON.parse((await kv([...s, "--json", "get", b, "bin"])).stdout);
        assert.equal(bin.valueBase64, "AAEC/w==");
      },
    );

    await t.step("get of an absent or deleted key fails with one line", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b);
      assertOneLineError(
        await kv([...s, "get", b, "nope"]),
        1,
        new RegExp(`key "nope" not found in bucket "${b}"`),
      );
      await store.put("gone", "x");
      await store.delete("gone");
      assertOneLineError(await kv([...s, "get", b, "gone"]), 1, /deleted at revision 2/);
      // A revision that belongs to another key is not this key's.
      await store.put("a", "1");
      assertOneLineError(await kv([...s, "get", b, "gone", "--revision", "3"]), 1, /not found/);
    });

    await t.step("create writes only a new key; update needs the current revision", async () => {
      const b = uniqueBucket();
      await kvm.create(b);
      const c1 = await kv([...s, "--json", "create", b, "k", "v1"]);
      assert.equal(c1.code, 0, c1.stderr);
      assert.equal(JSON.parse(c1.stdout).revision, 1);
      assertOneLineError(
        await kv([...s, "create", b, "k", "v2"]),
        1,
        /Cannot create "k": the key exists \(revision 1\)/,
      );
      const u1 = await kv([...s, "--json", "update", b, "k", "v2", "1"]);
      assert.equal(u1.code, 0, u1.stderr);
      assert.equal(JSON.parse(u1.stdout).revision, 2);
      assertOneLineError(
        await kv([...s, "update", b, "k", "v3", "1"]),
        1,
        /Cannot update "k": revision is 2, expected 1/,
      );
      assert.equal((await (await kvm.open(b)).get("k"))?.string(), "v2");
      assertOneLineError(await kv([...s, "update", b, "k", "v3", "x"]), 2, /<revision>/);
    });

    await t.step("del and purge refuse without a terminal unless forced", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b, { history: 5 });
      await store.put("k", "1");
      await store.put("k", "2");
      assertOneLineError(await kv([...s, "del", b, "k"]), 1, /pass -f/);
      assert.equal((await store.get("k"))?.operation, "PUT");
      const d = await kv([...s, "del", b, "k", "-f"]);
      assert.equal(d.code, 0, d.stderr);
      assert.equal((await store.get("k"))?.operation, "DEL");

      await store.put("p", "1");
      await store.put("p", "2");
      assertOneLineError(await kv([...s, "purge", b, "p"]), 1, /pass -f/);
      const p = await kv([...s, "purge", b, "p", "--force"]);
      assert.equal(p.code, 0, p.stderr);
      const h = JSON.parse((await kv([...s, "--json", "history", b, "p"])).stdout);
      assert.deepEqual(h.map((e: { operation: string }) => e.operation), ["PURGE"]);
    });

    await t.step("history lists every revision of a key with its operation", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b, { history: 10 });
      await store.put("h", "one");
      await store.put("h", "two");
      await store.delete("h");
      const r = await kv([...s, "history", b, "h"]);
      assert.equal(r.code, 0, r.stderr);
      const rows = r.stdout.trim().split("\n").filter((l) => l.startsWith("h "));
      assert.equal(rows.length, 3);
      assert.match(rows[0]!, /^h\s+1\s+PUT\s+.*\s3\s+one$/);
      assert.match(rows[1]!, /^h\s+2\s+PUT\s+.*\s3\s+two$/);
      assert.match(rows[2]!, /^h\s+3\s+DELETE\s/);
      const j = JSON.parse((await kv([...s, "--json", "history", b, "h"])).stdout);
      assert.deepEqual(j.map((e: { revision: number }) => e.revision), [1, 2, 3]);
      assertOneLineError(await kv([...s, "history", b, "never"]), 1, /not found/);
    });

    await t.step("keys and ls list live keys, optionally filtered", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b);
      for (const k of ["user.2", "user.1", "order.1", "gone"]) await store.put(k, "v");
      await store.delete("gone");
      const all = await kv([...s, "keys", b]);
      assert.equal(all.code, 0, all.stderr);
      assert.deepEqual(all.stdout.trim().split("\n"), ["order.1", "user.1", "user.2"]);
      const users = await kv([...s, "--json", "keys", b, "user.*"]);
      assert.deepEqual(JSON.parse(users.stdout), ["user.1", "user.2"]);
      const ls = await kv([...s, "ls", b, "order.>"]);
      assert.deepEqual(ls.stdout.trim().split("\n"), ["order.1"]);
      assertOneLineError(await kv([...s, "keys", b, "user.*x"]), 1, /wildcards/);
      const empty = await kv([...s, "--json", "keys", b, "nothing.>"]);
      assert.deepEqual(JSON.parse(empty.stdout), []);
    });

    await t.step("ls, status and info describe buckets", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b, { history: 2 });
      await store.put("a", "1");
      const ls = await kv([...s, "ls"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^Bucket\s+Values\s+Size\s+History/);
      assert.match(ls.stdout, new RegExp(`^${b}\\s+1\\s+`, "m"));
      const names = await kv([...s, "ls", "-n"]);
      assert.ok(names.stdout.split("\n").includes(b));
      const status = await kv([...s, "--json", "status"]);
      const mine = JSON.parse(status.stdout).find((x: { bucket: string }) => x.bucket === b);
      assert.equal(mine.values, 1);
      assert.equal(mine.history, 2);
      assert.equal(mine.stream, `KV_${b}`);
      const info = await kv([...s, "info", b]);
      assert.match(info.stdout, new RegExp(`Information for Key-Value Store Bucket ${b} created`));
      assert.match(info.stdout, /Values Stored: 1/);
      assert.match(info.stdout, new RegExp(`JetStream Stream: KV_${b}`));
      const viaStatus = await kv([...s, "status", b, "--json"]);
      assert.equal(JSON.parse(viaStatus.stdout).bucket, b);
    });

    await t.step("watch prints current values then changes, and --count ends it", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b);
      await store.put("w.a", "first");
      await store.put("x.other", "not watched");
      const child = spawnKv([...s, "watch", b, "w.>", "--count", "3"]);
      const lines = collectLines(child.stdout);
      await waitFor(() => lines.length >= 1, { message: "watch prints the current value" });
      assert.match(lines[0]!, new RegExp(`#1 PUT ${b} > w\\.a: first$`));
      await store.put("w.b", "second");
      await store.delete("w.a");
      const status = await child.status;
      await child.stderr.cancel();
      assert.equal(status.code, 0);
      await waitFor(() => lines.length >= 3, { message: "all three events are read" });
      assert.match(lines[1]!, new RegExp(`#3 PUT ${b} > w\\.b: second$`));
      assert.match(lines[2]!, new RegExp(`#4 DELETE ${b} > w\\.a$`));
      assert.equal(lines.length, 3);
    });

    await t.step("watch --json streams one JSON line per event and stops on SIGINT", async () => {
      const b = uniqueBucket();
      const store = await kvm.create(b);
      await store.put("old", "not an update");
      const child = spawnKv([...s, "--json", "watch", b, "--updates"]);
      const lines = collectLines(child.stdout);
      // The watcher subscribes at some point after start: write until it reports a write.
      let n = 0;
      await waitFor(async () => {
        await store.put("k", `v${++n}`);
        return lines.length > 0;
      }, { timeoutMs: 20_000, intervalMs: 100, message: "watch prints an update" });
      const event = JSON.parse(lines[0]!);
      assert.equal(event.bucket, b);
      assert.equal(event.key, "k");
      assert.equal(event.operation, "PUT");
      assert.equal(event.isUpdate, true);
      assert.match(event.value, /^v\d+$/);
      child.kill("SIGINT");
      const status = await child.status;
      await child.stderr.cancel();
      assert.equal(status.code, 0);
    });

    await t.step("rm removes a bucket only when forced", async () => {
      const b = uniqueBucket();
      await kvm.create(b);
      assertOneLineError(await kv([...s, "rm", b]), 1, /Delete bucket .*pass -f/);
      await jsm.streams.info(`KV_${b}`); // still there
      const r = await kv([...s, "--json", "rm", b, "-f"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { bucket: b, deleted: true });
      await assert.rejects(() => jsm.streams.info(`KV_${b}`), /stream not found/);
    });

    await t.step("usage mistakes exit 2 with one line", async () => {
      assertOneLineError(await kv([...s, "frob"]), 2, /unknown command "frob"/);
      assertOneLineError(await kv([...s, "ls", "--bogus"]), 2, /unknown flag --bogus/);
      assertOneLineError(await kv([...s, "put", "b"]), 2, /missing argument <key>/);
      assertOneLineError(await kv([...s, "get", "b", "k", "extra"]), 2, /unexpected argument/);
      assertOneLineError(await kv([...s, "add", "b", "--ttl", "5parsecs"]), 2, /duration/);
      assertOneLineError(await kv([...s, "add", "b", "--history", "65"]), 2, /at most 64/);
      assertOneLineError(await kv([...s, "add", "b", "--storage", "tape"]), 2, /file, f, memory/);
      const none = await kv([]);
      assert.equal(none.code, 2);
      assert.match(none.stderr, /^usage: /);
    });

    await t.step("--help works per command and overall", async () => {
      const top = await kv(["--help"]);
      assert.equal(top.code, 0);
      assert.match(top.stdout, /commands:/);
      for (const cmd of ["add", "put", "get", "watch", "rm"]) {
        const r = await kv([cmd, "--help"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^usage: deno task kv (add|put|get|watch|del) /);
        assert.match(r.stdout, /--server URL/);
      }
      const watch = await kv(["help", "watch"]);
      assert.match(watch.stdout, /--count N/);
    });

    await t.step("bad keys and bucket names fail with one line before any I/O", async () => {
      // No server listens there: the key is rejected before connecting.
      const dead = ["--server", "nats://127.0.0.1:1"];
      assertOneLineError(
        await kv([...dead, "get", "b", "a..b"]),
        1,
        /Cannot get "a\.\.b": a key must not contain an empty token/,
      );
      assertOneLineError(await kv([...dead, "put", "b", "a b", "v"]), 1, /Cannot put "a b"/);
      assertOneLineError(await kv([...dead, "put", "b", "*", "v"]), 1, /Cannot put "\*"/);
      assertOneLineError(await kv([...dead, "info", "bad.bucket"]), 1, /invalid bucket name/);
    });

    await t.step("a missing bucket fails with one line", async () => {
      const b = uniqueBucket();
      for (const args of [["get", b, "k"], ["put", b, "k", "v"], ["info", b], ["keys", b]]) {
        assertOneLineError(
          await kv([...s, ...args]),
          1,
          new RegExp(`bucket "${b}" does not exist`),
        );
      }
    });

    await t.step("an unreachable server fails with one line naming it", async () => {
      assertOneLineError(
        await kv(["--server", "nats://127.0.0.1:1", "--timeout", "2s", "ls"]),
        1,
        /cannot connect to nats:\/\/127\.0\.0\.1:1/,
      );
    });

    await t.step("without --server, NATS_URL is used", async () => {
      const b = uniqueBucket();
      await kvm.create(b);
      const r = await kv(["put", b, "k", "v"], { env: { NATS_URL: server.url } });
      assert.equal(r.code, 0, r.stderr);
    });
  } finally {
    await nc.close();
  }
});

Deno.test("kv CLI finds the embedded server of `deno task serve` under .data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_cli_" });
  try {
    await using embedded = await startEmbedded({ dataDir: `${dir}/.data` });
    const b = uniqueBucket();
    const add = await kv(["add", b], { cwd: dir });
    assert.equal(add.code, 0, add.stderr);
    const nc = await connectTo(embedded.url);
    try {
      await (await jetstreamManager(nc)).streams.info(`KV_${b}`);
    } finally {
      await nc.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kv CLI authenticates with --user/--password and --token", async (t) => {
  await t.step("user and password", async () => {
    await using server = await startServer({
      config: 'authorization { user: "ops", password: "s3cret" }',
    });
    const ok = await kv(["-s", server.url, "--user", "ops", "--password", "s3cret", "ls"]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await kv(["-s", server.url, "--user", "ops", "--password", "wrong", "ls"]);
    assertOneLineError(bad, 1, /cannot connect/);
    assert.doesNotMatch(bad.stderr, /wrong/);
  });
  await t.step("token", async () => {
    await using server = await startServer({ config: 'authorization { token: "t0ken" }' });
    const ok = await kv(["-s", server.url, "--token", "t0ken", "ls"]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await kv(["-s", server.url, "ls"]);
    assertOneLineError(bad, 1, /cannot connect/);
  });
});

/** Starts the CLI in the background with stdout and stderr piped. */
function spawnKv(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, SCRIPT, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NATS_URL: "" },
  }).spawn();
}

/** Collects the lines of a byte stream into an array, in the background. */
function collectLines(stream: ReadableStream<Uint8Array>): string[] {
  const lines: string[] = [];
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) lines.push(buf);
  })();
  return lines;
}

Deno.test("kv CLI per-key TTL: add --marker-ttl and put --ttl", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  const jsm = await jetstreamManager(nc);
  const s = ["--server", server.url];
  try {
    if (!versionAtLeast(nc.info?.version, PER_KEY_TTL_VERSION)) {
      await t.step(
        "on 2.9 both flags fail with one line naming 2.11, nothing written",
        async () => {
          const b = uniqueBucket();
          const add = await kv([...s, "add", b, "--marker-ttl", "1s"]);
          assertOneLineError(add, 1, /per-key TTL needs nats-server 2\.11 or newer/);
          await assert.rejects(jsm.streams.info(`KV_${b}`));
          assert.equal((await kv([...s, "add", b])).code, 0);
          const put = await kv([...s, "put", b, "k", "v", "--ttl", "2s"]);
          assertOneLineError(put, 1, /per-key TTL needs nats-server 2\.11 or newer/);
          assert.equal((await jsm.streams.info(`KV_${b}`)).state.messages, 0);
        },
      );
      return;
    }
    await t.step("add --marker-ttl makes a bucket whose put --ttl keys expire", async () => {
      const b = uniqueBucket();
      const add = await kv([...s, "add", b, "--marker-ttl", "1s"]);
      assert.equal(add.code, 0, add.stderr);
      const si = await jsm.streams.info(`KV_${b}`);
      assert.equal(si.config.allow_msg_ttl, true);
      assert.equal(si.config.subject_delete_marker_ttl, 1_000_000_000);
      assert.equal((await kv([...s, "add", b, "--marker-ttl", "1s"])).code, 0, "idempotent");
      assertOneLineError(await kv([...s, "add", b]), 1, /different settings \(marker ttl 1s\)/);

      const put = await kv([...s, "--json", "put", b, "session", "v", "--ttl", "1s"]);
      assert.equal(put.code, 0, put.stderr);
      const rev = JSON.parse(put.stdout).revision as number;
      const kvb = await new Kvm(nc).open(b);
      assert.equal((await kvb.get("session"))?.string(), "v");
      await waitFor(async () => {
        const e = await kvb.get("session");
        return e !== null && e.revision > rev && e.operation !== "PUT";
      }, { timeoutMs: 20_000, message: "the key expires" });
    });

    await t.step(
      "put --ttl on a bucket without markers, or under 1s, fails with one line",
      async () => {
        const b = uniqueBucket();
        assert.equal((await kv([...s, "add", b])).code, 0);
        assertOneLineError(
          await kv([...s, "put", b, "k", "v", "--ttl", "2s"]),
          1,
          /no limit markers/,
        );
        const m = uniqueBucket();
        assert.equal((await kv([...s, "add", m, "--marker-ttl", "1s"])).code, 0);
        assertOneLineError(
          await kv([...s, "put", m, "k", "v", "--ttl", "500ms"]),
          1,
          /at least 1000/,
        );
        assert.equal((await jsm.streams.info(`KV_${b}`)).state.messages, 0);
        assert.equal((await jsm.streams.info(`KV_${m}`)).state.messages, 0);
      },
    );
  } finally {
    await nc.close();
  }
});

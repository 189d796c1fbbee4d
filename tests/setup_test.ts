import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectTo, startCluster, startServer, uniqueBucket, waitFor } from "./_setup.ts";
import { createReplicatedBucket } from "./_chaos.ts";

/** The process state letter from /proc (R, S, T for stopped, ...), or undefined if gone. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name is parenthesised and may hold spaces; the state follows it.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/**
 * A KV manager whose requests give up after 1 s: a request sent while the
 * client is still reconnecting is lost, and waitFor should retry it soon.
 */
function kvm(nc: NatsConnection): Kvm {
  return new Kvm(jetstream(nc, { timeout: 1_000 }));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("startServer() runs a JetStream server that serves a KV bucket", async (t) => {
  await using server = await startServer();

  await t.step("the handle describes a live loopback server", async () => {
    assert.equal(server.url, `nats://127.0.0.1:${server.port}`);
    assert.notEqual(server.port, 4222);
    assert.ok(server.monitorPort > 0);
    assert.ok(server.name.length > 0);
    assert.ok(await procState(server.pid));
    assert.ok(await exists(server.storeDir));
  });

  await t.step("a bucket can be created, written and read", async () => {
    const nc = await connectTo(server);
    try {
      const kv = await kvm(nc).create(uniqueBucket());
      await kv.put("greeting", "hello");
      assert.equal((await kv.get("greeting"))?.string(), "hello");
    } finally {
      await nc.close();
    }
  });
});

Deno.test("a server restarted on its store dir keeps the bucket's data", async (t) => {
  await using server = await startServer();
  const bucket = uniqueBucket();
  const nc = await connectTo(server);
  try {
    const kv = await kvm(nc).create(bucket);
    await kv.put("a", "1");
    const port = server.port;

    await t.step("kill() ends the process with SIGKILL", async () => {
      const pid = server.pid;
      await server.kill();
      assert.equal(await procState(pid), undefined);
    });

    await t.step("restart() comes back on the same port with the data", async () => {
      const oldPid = server.pid;
      await server.restart();
      assert.equal(server.port, port);
      assert.notEqual(server.pid, oldPid);
      const entry = await waitFor(async () => (await kv.get("a"))?.string(), {
        timeoutMs: 15_000,
        message: "key a readable after restart",
      });
      assert.equal(entry, "1");
    });

    await t.step("restart() of a running server keeps the data too", async () => {
      await kv.put("b", "2");
      await server.restart();
      const entry = await waitFor(async () => (await kv.get("b"))?.string(), {
        timeoutMs: 15_000,
        message: "key b readable after graceful restart",
      });
      assert.equal(entry, "2");
    });
  } finally {
    await nc.close();
  }
});

Deno.test("pause() stops the server process and resume() lets it serve again", async () => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const kv = await kvm(nc).create(uniqueBucket());
    await kv.put("a", "1");
    server.pause();
    assert.equal(await procState(server.pid), "T");
    server.resume();
    await waitFor(async () => (await procState(server.pid)) !== "T", {
      message: "process continued",
    });
    const value = await waitFor(async () => (await kv.get("a"))?.string(), {
      message: "key a readable after resume",
    });
    assert.equal(value, "1");
  } finally {
    await nc.close();
  }
});

Deno.test("stop() leaves no process and no store dir behind", async (t) => {
  const server = await startServer();
  const pid = server.pid;
  const dir = server.storeDir;

  await t.step("the process and the directory are gone", async () => {
    await server.stop();
    assert.equal(await procState(pid), undefined);
    assert.equal(await exists(dir), false);
  });

  await t.step("a second stop() is harmless", async () => {
    await server.stop();
  });

  await t.step("restart() after stop() is refused", async () => {
    await assert.rejects(() => server.restart(), /Cannot restart/);
  });

  await t.step("a paused server still stops", async () => {
    const paused = await startServer();
    const pausedPid = paused.pid;
    paused.pause();
    await paused.stop();
    assert.equal(await procState(pausedPid), undefined);
  });
});

Deno.test("startServer() appends extra config such as authorization", async () => {
  await using server = await startServer({
    jetstream: false,
    config: 'authorization { user: "alice", password: "s3cret" }',
  });
  await assert.rejects(() => connectTo(server, { maxReconnectAttempts: 0 }));
  const nc = await connectTo(server, { user: "alice", pass: "s3cret" });
  await nc.flush();
  await nc.close();
});

Deno.test("a 3-node cluster serves R3 buckets and reports stream leaders", async (t) => {
  await using cluster = await startCluster();
  assert.deepEqual(cluster.servers.map((s) => s.name), ["n1", "n2", "n3"]);
  assert.equal(cluster.url, cluster.urls.join(","));
  const bucket = uniqueBucket();
  const nc = await connectTo(cluster.url);
  try {
    const kv = await createReplicatedBucket(nc, bucket, { replicas: 3 });
    await kv.put("a", "1");

    await t.step("leaderOf() finds the leader of the bucket's stream", async () => {
      const found = await waitFor(() => cluster.leaderOf(`KV_${bucket}`), {
        message: "stream leader known",
      });
      assert.ok(cluster.servers.includes(found));
    });

    await t.step("leaderOf() of an unknown stream is undefined", async () => {
      assert.equal(await cluster.leaderOf("KV_no_such_stream"), undefined);
    });

    await t.step("after the leader is killed another node leads", async () => {
      const old = await waitFor(() => cluster.leaderOf(`KV_${bucket}`));
      await old.kill();
      const next = await waitFor(async () => {
        const found = await cluster.leaderOf(`KV_${bucket}`);
        return found && found !== old ? found : undefined;
      }, { timeoutMs: 20_000, message: "a new stream leader" });
      assert.notEqual(next.name, old.name);
      const value = await waitFor(async () => (await kv.get("a"))?.string(), {
        timeoutMs: 15_000,
        message: "key a readable with one node down",
      });
      assert.equal(value, "1");
      await old.restart();
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a cluster whose node fails to start starts over on fresh ports", async () => {
  // Stands for a route port taken before its node binds it: nats-server says
  // why only in its log, so any node that does not come up is retried.
  const attempts = new Set<string>();
  await using cluster = await startCluster({
    nodeConfig: ({ name, storeDir }) => {
      const attempt = storeDir.split("/").at(-2)!;
      attempts.add(attempt);
      return name === "n2" && attempt === "a1" ? "this is { not a config" : "";
    },
  });
  assert.deepEqual([...attempts], ["a1", "a2"]);
  assert.deepEqual(cluster.servers.map((s) => s.name), ["n1", "n2", "n3"]);
});

Deno.test("waitFor() resolves with the first truthy value or rejects at its deadline", async (t) => {
  await t.step("resolves with the first truthy value", async () => {
    let calls = 0;
    const value = await waitFor(() => ++calls >= 3 ? `call ${calls}` : 0, { intervalMs: 1 });
    assert.equal(value, "call 3");
  });

  await t.step("treats throws as not yet", async () => {
    let calls = 0;
    const value = await waitFor(() => {
      if (++calls < 3) throw new Error("not yet");
      return calls;
    }, { intervalMs: 1 });
    assert.equal(value, 3);
  });

  await t.step("rejects with the message once the deadline passed", async () => {
    await assert.rejects(
      () => waitFor(() => false, { timeoutMs: 50, message: "the moon turns blue" }),
      /the moon turns blue/,
    );
  });

  await t.step("rejects even when the condition hangs", async () => {
    let release: () => void = () => {};
    const hang = new Promise<boolean>((resolve) => release = () => resolve(false));
    await assert.rejects(
      () => waitFor(() => hang, { timeoutMs: 50, message: "hanging check" }),
      /hanging check/,
    );
    release();
  });

  await t.step("names the last error", async () => {
    await assert.rejects(
      () =>
        waitFor(() => {
          throw new Error("server says no");
        }, { timeoutMs: 50 }),
      /server says no/,
    );
  });
});

Deno.test("uniqueBucket() gives distinct valid bucket names", () => {
  const names = new Set(Array.from({ length: 100 }, () => uniqueBucket()));
  assert.equal(names.size, 100);
  for (const name of names) assert.match(name, /^t_[0-9a-f]{8}$/);
  assert.match(uniqueBucket("edge"), /^edge_[0-9a-f]{8}$/);
});

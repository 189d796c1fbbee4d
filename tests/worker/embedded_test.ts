import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { findEmbedded, startEmbedded } from "../../host/embedded.ts";
import { UnavailableError } from "../../src/errors.ts";
import { connectTo, uniqueBucket, waitFor } from "../_setup.ts";

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^Z|^X/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

Deno.test("startEmbedded() runs a JetStream server recorded in embedded.json", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "kvedge_embedded_" });
  try {
    const nats = await startEmbedded({ dataDir });
    const infoFile = `${dataDir}/nats/embedded.json`;

    await t.step("the record names the live server", async () => {
      const info = await readJson(infoFile);
      assert.equal(info?.pid, nats.pid);
      assert.equal(info?.url, nats.url);
      assert.equal(info?.port, nats.port);
      assert.equal(typeof info?.startedAt, "string");
      assert.match(nats.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(nats.port, 4222);
    });

    await t.step("findEmbedded() returns its URL", async () => {
      assert.equal(await findEmbedded(dataDir), nats.url);
    });

    await t.step("it serves KV", async () => {
      const nc = await connectTo(nats);
      try {
        const kv = await new Kvm(nc).create(uniqueBucket());
        await kv.put("a", "1");
        assert.equal((await kv.get("a"))?.string(), "1");
      } finally {
        await nc.close();
      }
    });

    await t.step("close() stops it and removes the record", async () => {
      const pid = nats.pid;
      await nats.close();
      assert.equal(alive(pid), false);
      assert.equal(await readJson(infoFile), undefined);
      assert.equal(await findEmbedded(dataDir), undefined);
      await nats.close();
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startEmbedded() replaces the server of a crashed run and keeps its data", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "kvedge_embedded_" });
  const infoFile = `${dataDir}/nats/embedded.json`;
  const script = `${dataDir}/crashing_worker.ts`;
  const embeddedUrl = new URL("../../host/embedded.ts", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { startEmbedded } from ${JSON.stringify(embeddedUrl)};\n` +
      `await startEmbedded({ dataDir: ${JSON.stringify(dataDir)} });\n` +
      `setInterval(() => {}, 1000);\n`,
  );
  const worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stalePid = 0;
  try {
    const stale = await waitFor(() => readJson(infoFile), {
      timeoutMs: 30_000,
      message: "the crashing worker's embedded.json",
    });
    stalePid = Number(stale.pid);
    const nc = await connectTo(String(stale.url));
    const bucket = uniqueBucket();
    try {
      const kv = await new Kvm(jetstream(nc, { timeout: 1_000 })).create(bucket);
      await kv.put("kept", "yes");
    } finally {
      await nc.close();
    }

    // SIGKILL gives the worker no chance to stop its server: a crash.
    worker.kill("SIGKILL");
    await worker.status;
    assert.ok(alive(stalePid), "the orphaned nats-server outlives its worker");

    await using nats = await startEmbedded({ dataDir });
    await waitFor(() => !alive(stalePid), { message: "stale server gone" });
    assert.notEqual(nats.pid, stalePid);
    assert.equal((await readJson(infoFile))?.pid, nats.pid);

    const nc2 = await connectTo(nats);
    try {
      const kv = await new Kvm(nc2).open(bucket);
      assert.equal((await kv.get("kept"))?.string(), "yes");
    } finally {
      await nc2.close();
    }
  } finally {
    try {
      worker.kill("SIGKILL");
    } catch { /* already exited */ }
    await worker.status;
    if (stalePid && alive(stalePid)) Deno.kill(stalePid, "SIGKILL");
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startEmbedded() refuses a store that a live run is using", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "kvedge_embedded_" });
  const script = `${dataDir}/live_worker.ts`;
  const embeddedUrl = new URL("../../host/embedded.ts", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { startEmbedded } from ${JSON.stringify(embeddedUrl)};\n` +
      `await startEmbedded({ dataDir: ${JSON.stringify(dataDir)} });\n` +
      `setInterval(() => {}, 1000);\n`,
  );
  const worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const info = await waitFor(() => readJson(`${dataDir}/nats/embedded.json`), {
      timeoutMs: 30_000,
      message: "the live worker's embedded.json",
    });
    await assert.rejects(() => startEmbedded({ dataDir }), UnavailableError);
    assert.ok(alive(Number(info.pid)), "the live run's server is left alone");
  } finally {
    // SIGTERM ends Deno without unload handlers, so the server is stopped by PID here.
    worker.kill("SIGTERM");
    await worker.status;
    const info = await readJson(`${dataDir}/nats/embedded.json`);
    if (info && alive(Number(info.pid))) Deno.kill(Number(info.pid), "SIGKILL");
    await Deno.remove(dataDir, { recursive: true });
  }
});

/**
 * The edge worker's request log: successful reads are sampled (one line in
 * `KVEDGE_LOG_HITS_EVERY`, marked `sampled`), errors and writes are always
 * logged. Runs the real worker (embedded NATS) as a subprocess.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { waitFor } from "../_setup.ts";

const WORKER = fileURLToPath(new URL("../../workers/edge.ts", import.meta.url));

Deno.test("request log: reads sampled, errors and writes always logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_reqlog_" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER],
    cwd: dir,
    env: {
      NATS_URL: "",
      PORT: "0",
      KVEDGE_DATA_DIR: `${dir}/data`,
      KVEDGE_LOG_HITS_EVERY: "5",
      // A loaded machine can make any request slow, and slow ones are always
      // logged: out of the way here, so that the count depends on sampling only.
      KVEDGE_LOG_SLOW_MS: "600000",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buf += text;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(line));
        } catch {
          // not a log line
        }
      }
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  try {
    const listening = await waitFor(() => lines.find((l) => l.msg === "listening"), {
      timeoutMs: 60_000,
      message: "worker listens",
    });
    const base = String(listening.url);
    await waitFor(async () => {
      const r = await fetch(`${base}/readyz`);
      await r.body?.cancel();
      return r.status === 200;
    }, { timeoutMs: 30_000, message: "readyz is 200" });
    const put = await fetch(`${base}/v1/buckets/demo/keys/k`, { method: "PUT", body: "1" });
    assert.equal(put.status, 201);
    await put.body?.cancel();
    for (let i = 0; i < 10; i++) {
      const get = await fetch(`${base}/v1/buckets/demo/keys/k`);
      assert.equal(get.status, 200);
      await get.body?.cancel();
    }
    const missing = await fetch(`${base}/v1/buckets/demo/keys/absent`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const requests = () => lines.filter((l) => l.msg === "request");
    await waitFor(() => requests().some((l) => l.status === 404), {
      timeoutMs: 10_000,
      message: "the 404 is logged",
    });
    const keyGets = requests().filter((l) =>
      l.method === "GET" && l.path === "/v1/buckets/demo/keys/k"
    );
    assert.equal(keyGets.length, 2, "one successful read in 5 is logged");
    assert.ok(keyGets.every((l) => l.sampled === 5 && l.status === 200));
    assert.ok(requests().some((l) => l.method === "PUT" && l.status === 201 && !("sampled" in l)));
    const notFound = requests().find((l) => l.status === 404)!;
    assert.equal("sampled" in notFound, false);
  } finally {
    child.kill("SIGTERM");
    await pumps;
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

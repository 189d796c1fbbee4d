/**
 * kvedge under Bun and Node 22 and 24, from the sources (no build): each
 * runtime, installed from npm into .runtimes/ by scripts/setup.sh, runs
 * `_core_child.ts` against a nats-server this test starts, and the test judges
 * what the child printed. Deno itself is the rest of the suite.
 *
 * A runtime missing from .runtimes/ is a failure, not a skip: CI runs
 * setup.sh first, so a missing one means setup is broken.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer, uniqueBucket } from "../_setup.ts";
import { RUNTIMES } from "../_runtimes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHILD = "tests/runtimes/_core_child.ts";

type Line = { step: string; error?: string; code?: string; [k: string]: unknown };

/**
 * Runs the child scenario under `binary`; returns its lines by step. Killed
 * (by the signal, which ends that process only) if it outlives its deadline.
 */
async function runChild(binary: string, args: string[]): Promise<Map<string, Line>> {
  const out = await new Deno.Command(binary, {
    args: [CHILD, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const lines = new Map<string, Line>();
  for (const raw of text.split("\n")) {
    if (!raw.startsWith("{")) continue;
    const line = JSON.parse(raw) as Line;
    lines.set(line.step, line);
  }
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(
    lines.has("done"),
    `the child did not finish (exit ${out.code}):\n${text}\n${stderr}`,
  );
  return lines;
}

/** The observations of `step`, which must not have failed. */
function ok(lines: Map<string, Line>, step: string): Line {
  const line = lines.get(step);
  assert.ok(line, `no step "${step}"`);
  assert.equal(line.error, undefined, `step "${step}" failed: ${line.error}`);
  return line;
}

for (const [name, binary] of Object.entries(RUNTIMES)) {
  Deno.test(`kvedge's core under ${name}`, async (t) => {
    try {
      await Deno.stat(binary);
    } catch {
      assert.fail(`${name} is not installed at ${binary}: run bash scripts/setup.sh`);
    }
    await using srv = await startServer({ websocket: true });
    const dir = await Deno.makeTempDir({ prefix: "kvedge-runtime-" });
    try {
      await t.step(
        "over TCP: open, write, miss, hit, push, warm start, resync, fetch",
        async () => {
          const lines = await runChild(binary, [
            "core",
            srv.tcpUrl,
            srv.wsUrl!,
            uniqueBucket(),
            dir,
          ]);
          const runtime = ok(lines, "runtime").runtime as string;
          assert.ok(runtime.startsWith(name.split(" ")[0]!), `ran ${runtime}, not ${name}`);
          assert.deepEqual(ok(lines, "open"), { step: "open", writer: "synced", reader: "synced" });
          assert.equal(ok(lines, "write").revision, 1);
          assert.deepEqual(ok(lines, "miss"), {
            step: "miss",
            source: "miss",
            value: { n: 1 },
            revision: 1,
          });
          assert.deepEqual(ok(lines, "hit"), { step: "hit", source: "hit", value: { n: 1 } });
          assert.deepEqual(ok(lines, "push"), { step: "push", revision: 2, value: { n: 2 } });
          assert.ok((ok(lines, "snapshot-save").bytes as number) > 0, "close() wrote the snapshot");
          assert.deepEqual(ok(lines, "snapshot-warm-start"), {
            step: "snapshot-warm-start",
            snapshot: "loaded",
            value: { n: 2 },
          });
          const resync = ok(lines, "resync");
          assert.ok((resync.resyncs as number) >= 1);
          assert.equal(resync.old, null, "nothing of the old bucket survives the resync");
          const fetched = ok(lines, "fetch-handler");
          assert.equal(fetched.server, name === "bun" ? "Bun.serve" : "node:http");
          assert.deepEqual(fetched.get, [200, { n: 3 }]);
          assert.deepEqual(fetched.put, [201, { key: "k.3", revision: 2 }]);
          assert.equal(fetched.unauthorized, 401);
          assert.equal(fetched.absent, 404);
          assert.deepEqual(fetched.after, [200, { n: 4 }]);
        },
      );
      await t.step("over WebSocket: open, write, read, push", async () => {
        const lines = await runChild(binary, [
          "websocket",
          srv.tcpUrl,
          srv.wsUrl!,
          uniqueBucket(),
          dir,
        ]);
        assert.equal(ok(lines, "ws-open").state, "synced");
        assert.deepEqual(ok(lines, "ws-write-read"), {
          step: "ws-write-read",
          revision: 1,
          value: { n: 1 },
        });
        assert.deepEqual(ok(lines, "ws-push").value, { n: 2 });
      });
      await t.step(
        "without Promise.withResolvers or WebSocket, open fails at once with UnsupportedRuntimeError",
        async () => {
          const lines = await runChild(binary, [
            "runtime-errors",
            srv.tcpUrl,
            srv.wsUrl!,
            uniqueBucket(),
            dir,
          ]);
          const noResolvers = lines.get("no-withResolvers");
          assert.equal(noResolvers?.code, "UNSUPPORTED_RUNTIME", JSON.stringify(noResolvers));
          assert.match(noResolvers.error!, /^UnsupportedRuntimeError: Cannot open cache: .*Node/);
          const noWs = lines.get("no-WebSocket");
          assert.equal(noWs?.code, "UNSUPPORTED_RUNTIME", JSON.stringify(noWs));
          assert.match(noWs.error!, /global WebSocket/);
          const handler = lines.get("no-WebSocket-fetch-handler");
          assert.equal(handler?.code, "UNSUPPORTED_RUNTIME", JSON.stringify(handler));
          assert.match(handler.error!, /^UnsupportedRuntimeError: Cannot create fetch handler: /);
          assert.equal(ok(lines, "then-tcp-opens").revision, 1, "the refusals left nothing behind");
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

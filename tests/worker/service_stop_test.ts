/**
 * "Stopping" (docs/operations.md) holds for the way services are really
 * stopped: the worker started from the committed systemd unit's `ExecStart`
 * and the container's `ENTRYPOINT`, and `deno task serve`, each in its own
 * process group, stopped with SIGTERM to the process group (systemd's
 * `KillMode=control-group`, a terminal) and to the main process alone
 * (`KillMode=mixed`, `docker stop`), drain and exit 0. The commands are read
 * from the unit and the Containerfile, so a drift between them and the
 * worker fails here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type ServerHandle, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const UNIT = `${ROOT}/examples/systemd/kvedge-edge.service`;
const CONTAINERFILE = `${ROOT}/examples/container/Containerfile`;

/** `key=value` settings of one section of a systemd unit file (last one wins). */
export function unitSection(text: string, section: string): Map<string, string> {
  const out = new Map<string, string>();
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      current = head[1]!;
      continue;
    }
    const eq = line.indexOf("=");
    if (current === section && eq > 0) out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

/** The unit's command line, with its deno and checkout paths mapped to this machine. */
function unitCommand(): { argv: string[]; killMode: string; killSignal: string } {
  const service = unitSection(Deno.readTextFileSync(UNIT), "Service");
  const exec = service.get("ExecStart");
  assert.ok(exec, "the unit has an ExecStart");
  assert.equal(service.get("WorkingDirectory"), "/opt/kvedge", "the unit's checkout path");
  const argv = exec.split(/\s+/);
  assert.equal(argv[0], "/usr/local/bin/deno", "ExecStart runs deno by its installed path");
  argv[0] = Deno.execPath();
  return {
    argv,
    killMode: service.get("KillMode") ?? "control-group",
    killSignal: service.get("KillSignal") ?? "SIGTERM",
  };
}

/** The Containerfile's exec-form ENTRYPOINT, with `deno` mapped to this machine's. */
function entrypoint(): string[] {
  const text = Deno.readTextFileSync(CONTAINERFILE);
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text);
  assert.ok(
    m,
    "the Containerfile has an exec-form ENTRYPOINT (a shell form would not get SIGTERM)",
  );
  const argv = JSON.parse(m[1]!) as string[];
  assert.equal(argv[0], "deno");
  assert.match(text, /^WORKDIR \/opt\/kvedge$/m);
  argv[0] = Deno.execPath();
  return argv;
}

/** `argv` started with `setsid` in the repository (its own process group, as a service is). */
function startGroup(argv: string[], env: Record<string, string>) {
  const child = new Deno.Command("setsid", {
    args: argv,
    cwd: ROOT,
    env: { PORT: "0", KVEDGE_LOG_REQUESTS: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const exited = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => child.status);
  const lines = () =>
    text.split("\n").flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return {
    // setsid execs in place (its caller is no group leader): the child's pid is the group's id.
    pgid: child.pid,
    exited,
    output: () => text,
    lines,
    async [Symbol.asyncDispose]() {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // The group is gone.
      }
      await exited;
    },
  };
}

async function stopAndCheck(
  how: string,
  argv: string[],
  kill: (pgid: number, draining: () => Promise<unknown>, srv: ServerHandle) => unknown,
  env: Record<string, string> = {},
) {
  await using srv = await startServer();
  const bucket = uniqueBucket("svc");
  await using proc = startGroup(argv, {
    NATS_URL: srv.tcpUrl,
    KVEDGE_BUCKETS: bucket,
    KVEDGE_CREATE_BUCKETS: "1",
    KVEDGE_WRITE_TOKEN: "w-" + crypto.randomUUID(),
    ...env,
  });
  const listening = await waitFor(() => proc.lines().find((l) => l.msg === "listening"), {
    timeoutMs: 60_000,
    message: `${how}: the worker listens; output: ${proc.output()}`,
  });
  const res = await fetch(`${listening.url}/v1/buckets/${bucket}/keys/absent`);
  await res.body?.cancel();
  assert.equal(res.status, 404);
  await kill(proc.pgid, () =>
    waitFor(() => proc.lines().some((l) => l.msg === "shutting down"), {
      timeoutMs: 30_000,
      message: `${how}: the worker starts draining`,
    }).catch(async (err) => {
      // The output and the group's state at the timeout, not at the call.
      const exited = await Promise.race([proc.exited, Promise.resolve(undefined)]);
      throw new Error(
        `${err.message}; exited: ${JSON.stringify(exited ?? "no")}; output:\n${proc.output()}`,
      );
    }), srv);
  const status = await proc.exited;
  const msgs = proc.lines().map((l) => String(l.msg));
  assert.ok(
    !msgs.includes("forced exit"),
    `${how}: forced exit instead of a drain:\n${proc.output()}`,
  );
  assert.ok(msgs.includes("shutting down"), `${how}: no "shutting down":\n${proc.output()}`);
  assert.ok(msgs.includes("stopped"), `${how}: no "stopped":\n${proc.output()}`);
  assert.equal(status.code, 0, `${how}: exit code; output:\n${proc.output()}`);
  const workers = Number(env.KVEDGE_WORKERS ?? 1);
  if (workers > 1) {
    const stopped = proc.lines().filter((l) => l.msg === "isolate stopped").map((l) => l.isolate);
    assert.deepEqual(
      stopped.sort(),
      Array.from({ length: workers }, (_, i) => i + 1),
      `${how}: every isolate drained:\n${proc.output()}`,
    );
  }
}

const group = (pgid: number) => Deno.kill(-pgid, "SIGTERM");
/** The processes `pid` started (Linux). */
const childrenOf = (pid: number) =>
  Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/).map(Number);
const main = (pgid: number) => Deno.kill(pgid, "SIGTERM");

Deno.test("the systemd unit's ExecStart drains on systemd's stop, with its KillMode and with control-group", async () => {
  const { argv, killMode, killSignal } = unitCommand();
  assert.equal(killSignal, "SIGTERM");
  assert.ok(["mixed", "control-group"].includes(killMode), `KillMode=${killMode}`);
  await stopAndCheck(`KillMode=${killMode}`, argv, killMode === "mixed" ? main : group);
  await stopAndCheck("KillMode=control-group", argv, group);
});

Deno.test("the container ENTRYPOINT drains on docker stop (SIGTERM to the entry process)", async () => {
  await stopAndCheck("docker stop", entrypoint(), main);
});

Deno.test("deno task serve drains when the whole process group gets SIGTERM", async () => {
  await stopAndCheck(
    "deno task serve, group SIGTERM",
    [Deno.execPath(), "task", "serve"],
    async (pgid, draining, srv) => {
      const [worker] = childrenOf(pgid);
      assert.ok(worker, "deno task started the worker");
      // deno task forwards its own copy of the group's SIGTERM to the worker: in the
      // same instant (merged with the group's) or once the drain began. The second
      // case, made certain: NATS paused holds the drain (its 5 s connection drain)
      // while the forwarded copy arrives.
      srv.pause();
      try {
        group(pgid);
        await draining();
        Deno.kill(worker, "SIGTERM");
      } finally {
        srv.resume();
      }
    },
  );
});

Deno.test("with KVEDGE_WORKERS=2 the unit's ExecStart and the ENTRYPOINT drain every isolate on systemd's and docker's stop", async () => {
  const { argv, killMode } = unitCommand();
  const two = { KVEDGE_WORKERS: "2" };
  await stopAndCheck(
    `KillMode=${killMode}, 2 isolates`,
    argv,
    killMode === "mixed" ? main : group,
    two,
  );
  await stopAndCheck("KillMode=control-group, 2 isolates", argv, group, two);
  await stopAndCheck("docker stop, 2 isolates", entrypoint(), main, two);
});

Deno.test("a second Ctrl-C while draining still exits at once", async () => {
  await using srv = await startServer();
  const bucket = uniqueBucket("svc");
  const { argv } = unitCommand();
  await using proc = startGroup(argv, {
    NATS_URL: srv.tcpUrl,
    KVEDGE_BUCKETS: bucket,
    KVEDGE_CREATE_BUCKETS: "1",
    KVEDGE_WRITE_TOKEN: "w-" + crypto.randomUUID(),
  });
  await waitFor(() => proc.lines().find((l) => l.msg === "listening"), {
    timeoutMs: 60_000,
    message: `the worker listens; output: ${proc.output()}`,
  });
  // NATS paused holds the drain (the connection's 5 s drain) while the second Ctrl-C arrives.
  srv.pause();
  try {
    Deno.kill(proc.pgid, "SIGINT");
    await waitFor(() => proc.lines().some((l) => l.msg === "shutting down"), {
      timeoutMs: 30_000,
      message: `the worker starts draining; output: ${proc.output()}`,
    });
    Deno.kill(proc.pgid, "SIGINT");
    const status = await proc.exited;
    assert.equal(status.code, 1, proc.output());
    assert.ok(proc.lines().some((l) => l.msg === "forced exit"), proc.output());
  } finally {
    srv.resume();
  }
});

Deno.test("deno task project stops cleanly when the whole process group gets SIGTERM", async () => {
  await using srv = await startServer();
  const publish = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/orders/publish_orders.ts", "--orders", "5"],
    cwd: ROOT,
    env: { NATS_URL: srv.tcpUrl },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(publish.code, 0, new TextDecoder().decode(publish.stderr));
  await using proc = startGroup([
    Deno.execPath(),
    "task",
    "project",
    "examples/orders/projection.ts",
  ], {
    NATS_URL: srv.tcpUrl,
  });
  await waitFor(() => proc.lines().some((l) => l.msg === "projection started"), {
    timeoutMs: 60_000,
    message: `the projector starts; output: ${proc.output()}`,
  });
  const [worker] = childrenOf(proc.pgid);
  assert.ok(worker, "deno task started the projector");
  // As for the edge worker: the group's SIGTERM, then deno task's forwarded copy while stopping.
  srv.pause();
  try {
    group(proc.pgid);
    await waitFor(() => proc.lines().some((l) => l.msg === "stopping"), {
      timeoutMs: 30_000,
      message: `the projector starts stopping; output: ${proc.output()}`,
    });
    Deno.kill(worker, "SIGTERM");
  } finally {
    srv.resume();
  }
  const status = await proc.exited;
  assert.equal(status.code, 0, proc.output());
  assert.ok(!proc.output().includes("exiting at once"), proc.output());
});

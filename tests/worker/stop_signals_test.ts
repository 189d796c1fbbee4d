/**
 * The workers' stop signals (workers/_stop_signals.ts) are handled for the
 * whole life of the process: a signal sent at any moment after the first —
 * in particular in the instant the first is being handled, as under
 * `deno task serve`, where the group's SIGTERM and `deno task`'s forwarded
 * copy arrive together — is a repeat (logged) or a forced exit with the
 * worker's code, never the default action (status 143, no drain). Each case
 * runs in a process of its own that signals itself.
 *
 * @module
 */
import assert from "node:assert/strict";

const MODULE = new URL("../../workers/_stop_signals.ts", import.meta.url).href;

/** Runs `body` after `listenForStop` in a fresh process; its output and status. */
async function run(body: string) {
  const code = `
    import { listenForStop } from ${JSON.stringify(MODULE)};
    const first = listenForStop({
      onRepeat: (s) => console.log("repeat " + s),
      onForce: (s) => console.log("force " + s),
      forcedExitCode: 7,
    });
    ${body}
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    signal: out.signal,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Signals this process and waits until its listener has seen it (`seen` counts the lines). */
const SELF = `
  const lines = [];
  const log = console.log;
  console.log = (l) => { lines.push(l); log(l); };
  const until = async (n) => { while (lines.length < n) await new Promise((r) => setTimeout(r, 1)); };
`;

Deno.test("a SIGTERM in the instant the first is handled is a repeat, not the default action", async () => {
  const r = await run(`${SELF}
    Deno.kill(Deno.pid, "SIGTERM");
    console.log("first " + await first);
    // At once, in the continuation of the first signal's handling, and then again.
    Deno.kill(Deno.pid, "SIGTERM");
    await until(2);
    Deno.kill(Deno.pid, "SIGTERM");
    await until(3);
    Deno.exit(0);
  `);
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), [
    "first SIGTERM",
    "repeat SIGTERM",
    "repeat SIGTERM",
  ]);
});

Deno.test("another signal after the first is a forced exit with the worker's code", async () => {
  const r = await run(`${SELF}
    Deno.kill(Deno.pid, "SIGHUP");
    console.log("first " + await first);
    Deno.kill(Deno.pid, "SIGINT");
    await new Promise(() => {}); // the forced exit ends the process
  `);
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stdout}${r.stderr}`);
  assert.equal(r.code, 7, r.stdout + r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["first SIGHUP", "force SIGINT"]);
});

Deno.test("a second SIGINT is never a repeat", async () => {
  const r = await run(`${SELF}
    Deno.kill(Deno.pid, "SIGINT");
    console.log("first " + await first);
    Deno.kill(Deno.pid, "SIGINT");
    await new Promise(() => {});
  `);
  assert.equal(r.code, 7, r.stdout + r.stderr);
  assert.deepEqual(r.stdout.trim().split("\n"), ["first SIGINT", "force SIGINT"]);
});

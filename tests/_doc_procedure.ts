/**
 * Runs a procedure the docs walk an operator through, from the docs' own
 * text: every line of every ```` ```sh ```` block of a page, in order. A line
 * ending in `&` is started in the background (its own process group, stopped
 * by the test); any other line must exit 0 — and print what its trailing
 * comment says (`curl … # "hello"`) — before the deadline, retried meanwhile
 * as an operator would retry a step that ran before the previous one was up.
 * Only ports and file locations are rewritten (`rewrite`), so a doc that
 * drifts from the code fails the test.
 *
 * @module
 */
import assert from "node:assert/strict";
import { freePort } from "../host/free_port.ts";
import { natsCliBinary, natsServerBinary } from "../host/nats_binary.ts";
import { waitFor } from "./_setup.ts";

/** One command of a page: its text, whether it runs in the background, what it must print. */
export interface DocCommand {
  /** The command as the page shows it (without a trailing `&` or comment). */
  command: string;
  /** Started with `&`. */
  background: boolean;
  /** The trailing comment, which its output must contain. */
  expect?: string;
}

/** The commands of every ```` ```sh ```` block of `markdown`, in order (comment lines skipped). */
export function shCommands(markdown: string): DocCommand[] {
  const out: DocCommand[] = [];
  const block = /^[ \t]*```sh\n([\s\S]*?)^[ \t]*```$/gm;
  for (const m of markdown.matchAll(block)) {
    for (const raw of m[1]!.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const [cmd, comment] = line.split(/\s+#\s+/, 2) as [string, string | undefined];
      const background = /\s&$/.test(cmd);
      out.push({
        command: background ? cmd.replace(/\s*&$/, "") : cmd,
        background,
        ...(comment === undefined ? {} : { expect: comment }),
      });
    }
  }
  return out;
}

/**
 * The commands of `markdown` below the heading line `heading`, up to the next
 * heading of the same or a higher level.
 */
export function sectionCommands(markdown: string, heading: string): DocCommand[] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(heading);
  assert.ok(start >= 0, `the page has the heading ${JSON.stringify(heading)}`);
  const level = /^#+/.exec(heading)![0].length;
  let end = lines.length;
  let fenced = false;
  for (let i = start + 1; i < lines.length; i++) {
    if (/^\s*```/.test(lines[i]!)) fenced = !fenced;
    const m = fenced ? null : /^(#+) /.exec(lines[i]!);
    if (m && m[1]!.length <= level) {
      end = i;
      break;
    }
  }
  return shCommands(lines.slice(start, end).join("\n"));
}

/** Every port number in `ports` mapped to a free loopback port. */
export function freePorts(ports: number[]): Map<number, number> {
  return new Map(ports.map((p) => [p, freePort()]));
}

/** `text` with every whole-word occurrence of a mapped port replaced. */
export function remapPorts(text: string, ports: Map<number, number>): string {
  return text.replace(/\b(\d{4,5})\b/g, (m) => String(ports.get(Number(m)) ?? m));
}

/** What a procedure run needs: where, with what, and how commands are rewritten. */
export interface ProcedureOptions {
  /** Working directory of every command (the checkout's root). */
  cwd: string;
  /** A directory of the test's own (HOME, the PATH's tools). */
  tmp: string;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Turns the page's command into the one run (ports, paths). */
  rewrite: (command: string) => string;
  /** Deadline of each foreground command, ms. Default 60 000. */
  stepTimeoutMs?: number;
  /**
   * Called before each command is started (with the page's command): where a
   * test waits, with a deadline, for what the page tells the operator to wait
   * for (a cluster's meta leader, a stream leader), so a failure says which.
   */
  before?: (command: DocCommand, run: ProcedureRun) => Promise<void>;
}

/** Background processes of a run; disposing stops each process group (SIGTERM, then SIGKILL). */
export interface ProcedureRun extends AsyncDisposable {
  /** Output of each background command so far, by its page text. */
  background: Map<string, () => string>;
  /** Output of each foreground command's successful run, in order. */
  outputs: string[];
  /** Runs one more command (not rewritten) in the same environment, once: exit code and output. */
  sh(script: string): Promise<{ code: number; out: string }>;
}

/** Runs `commands` as {@linkcode shCommands} describes. */
export async function runProcedure(
  commands: DocCommand[],
  o: ProcedureOptions,
): Promise<ProcedureRun> {
  const bin = `${o.tmp}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  await Deno.symlink(natsServerBinary(), `${bin}/nats-server`);
  const cli = natsCliBinary();
  if (cli !== undefined) await Deno.symlink(cli, `${bin}/nats`);
  const denoDir = Deno.execPath().replace(/\/[^/]*$/, "");
  const env = {
    PATH: `${bin}:${denoDir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    HOME: o.tmp,
    XDG_CONFIG_HOME: o.tmp,
    NO_COLOR: "1",
    ...o.env,
  };
  const groups: { child: Deno.ChildProcess; exited: Promise<unknown> }[] = [];
  const run: ProcedureRun = {
    background: new Map(),
    outputs: [],
    async sh(script) {
      const r = await new Deno.Command("bash", {
        args: ["-c", script],
        cwd: o.cwd,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
    },
    async [Symbol.asyncDispose]() {
      // Newest first, as an operator stops them: the edge before its servers.
      for (const g of groups.reverse()) {
        for (const signal of ["SIGTERM", "SIGKILL"] as const) {
          try {
            Deno.kill(-g.child.pid, signal);
          } catch {
            break; // The group is gone.
          }
          const done = await Promise.race([
            g.exited.then(() => true),
            new Promise<false>((r) => {
              const t = setTimeout(() => r(false), 20_000);
              g.exited.finally(() => clearTimeout(t));
            }),
          ]);
          if (done) break;
        }
        await g.exited;
      }
    },
  };
  try {
    for (const c of commands) {
      await o.before?.(c, run);
      const script = o.rewrite(c.command);
      if (c.background) {
        const child = new Deno.Command("setsid", {
          args: ["bash", "-c", script],
          cwd: o.cwd,
          env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        let text = "";
        const pump = async (s: ReadableStream<Uint8Array>) => {
          for await (const chunk of s.pipeThrough(new TextDecoderStream())) text += chunk;
        };
        groups.push({ child, exited: Promise.all([pump(child.stdout), pump(child.stderr)]) });
        run.background.set(c.command, () => text);
        continue;
      }
      let last = "";
      let out: string;
      try {
        out = await waitFor(async () => {
          const r = await new Deno.Command("bash", {
            args: ["-c", script],
            cwd: o.cwd,
            env,
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).output();
          const dec = new TextDecoder();
          const stdout = dec.decode(r.stdout);
          last = `exit ${r.code}\n${stdout}${dec.decode(r.stderr)}`;
          if (r.code !== 0) return undefined;
          if (c.expect !== undefined && !stdout.includes(c.expect)) return undefined;
          // An object: a command that succeeds printing nothing on stdout has succeeded.
          return { stdout };
        }, { timeoutMs: o.stepTimeoutMs ?? 60_000, intervalMs: 250 }).then((r) => r.stdout);
      } catch {
        const bg = [...run.background].map(([k, v]) => `--- ${k}\n${v().slice(-3000)}`);
        throw new Error(
          `the documented command\n  ${c.command}\nran as\n  ${script}\nnever succeeded` +
            `${c.expect === undefined ? "" : ` printing ${c.expect}`}; last run:\n${last}\n` +
            `background:\n${bg.join("\n")}`,
        );
      }
      run.outputs.push(out);
    }
  } catch (err) {
    await run[Symbol.asyncDispose]();
    throw err;
  }
  return run;
}

/** Fails unless `a` and `b` are the same below their `# <<< host-specific` line. */
export function assertSameBody(a: string, b: string, what: string): void {
  const body = (s: string) => {
    const i = s.indexOf("# <<< host-specific\n");
    assert.ok(i >= 0, `${what}: no host-specific section`);
    return s.slice(i);
  };
  assert.equal(body(a), body(b), what);
}

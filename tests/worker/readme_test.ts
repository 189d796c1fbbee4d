/**
 * The README's newcomer path, run as written: `deno task serve` in an empty
 * directory, the curl session against it (only the port differs), then the
 * library example, which must be examples/hello.ts verbatim, must terminate
 * and must print what the README says it prints.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { spawnEdge, waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const README = await Deno.readTextFile(`${ROOT}README.md`);

/** The first fenced block of `lang` after the line `heading`, without its fences. */
function blockAfter(heading: string, lang: string): string {
  const at = README.indexOf(heading);
  assert.ok(at >= 0, `README has ${JSON.stringify(heading)}`);
  const open = README.indexOf("\n```" + lang + "\n", at);
  assert.ok(open >= 0, `a \`\`\`${lang} block after ${JSON.stringify(heading)}`);
  const start = open + 5 + lang.length;
  const end = README.indexOf("\n```\n", start - 1);
  return README.slice(start, end + 1);
}

interface CurlStep {
  command: string;
  expected: string[];
}

/** The curl session: each `curl` line with the comment lines that follow it. */
function curlSteps(session: string): { setup: string[]; steps: CurlStep[] } {
  const setup: string[] = [];
  const steps: CurlStep[] = [];
  for (const line of session.split("\n")) {
    if (line.startsWith("curl ")) {
      const [command, inline] = line.split(/\s+#\s+/, 2);
      steps.push({ command: command!.trim(), expected: inline === undefined ? [] : [inline] });
    } else if (line.startsWith("#   ") && steps.length > 0) {
      steps.at(-1)!.expected.push(line.slice(4));
    } else if (/^[A-Z]+=/.test(line)) {
      setup.push(line);
    }
  }
  return { setup, steps };
}

async function sh(script: string, cwd: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("the README's newcomer path works verbatim: serve, curl, library example", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_readme_" });
  try {
    // As a newcomer would: no NATS_URL, no data directory, the default bucket.
    await using edge = spawnEdge(dir);
    const { url } = await edge.listening();
    const hostPort = new URL(url).host;
    await waitFor(async () => {
      const r = await fetch(`${url}/readyz`);
      await r.body?.cancel();
      return r.ok;
    }, { timeoutMs: 30_000, message: "readyz is 200" });

    await t.step("the curl session answers what the README shows", async () => {
      const { setup, steps } = curlSteps(blockAfter("## A curl session", "sh"));
      assert.ok(steps.length >= 10, "the session has its curl commands");
      const prelude = setup.map((l) => l.replaceAll("127.0.0.1:8080", hostPort)).join("\n");
      for (const step of steps) {
        let command = step.command.replaceAll("127.0.0.1:8080", hostPort);
        // The watch stream never ends by itself: give it a few seconds.
        if (command.startsWith("curl -N")) command = command.replace("curl -N", "curl -N -m 3");
        const { out } = await sh(`${prelude}\n${command}`, dir);
        const body = out.trim();
        for (const expected of step.expected) {
          const status = /^HTTP\/1\.1 (\d{3})/.exec(expected);
          if (status) {
            assert.match(body, new RegExp(`^HTTP/1\\.1 ${status[1]}`), `${step.command}\n${body}`);
          } else if (/^(event|id|retry): /.test(expected)) {
            assert.ok(body.includes(expected), `${step.command} prints ${expected}\n${body}`);
          } else if (expected.startsWith("{")) {
            // A body shown whole, or up to an ellipsis.
            const shown = expected.split("...")[0]!;
            assert.ok(body.includes(shown), `${step.command} prints ${shown}\n${body}`);
          }
        }
      }
    });

    await t.step("examples/hello.ts is the README's example, and runs as it says", async () => {
      const example = blockAfter("## From code", "ts");
      const file = await Deno.readTextFile(`${ROOT}examples/hello.ts`);
      assert.equal(example, file, "the README shows examples/hello.ts verbatim");

      // From the directory where serve runs, without NATS_URL, as the README says.
      const env = Deno.env.toObject();
      delete env.NATS_URL;
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}examples/hello.ts`],
        cwd: dir,
        env,
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const result = await Promise.race([
        child.output(),
        new Promise<"timeout">((resolve) => {
          const timer = setTimeout(() => resolve("timeout"), 90_000);
          child.status.finally(() => clearTimeout(timer));
        }),
      ]);
      if (result === "timeout") {
        child.kill("SIGKILL");
        await child.output();
        assert.fail("examples/hello.ts did not terminate within 90 s");
      }
      const dec = new TextDecoder();
      const stdout = dec.decode(result.stdout);
      assert.equal(result.code, 0, `exit code; stderr: ${dec.decode(result.stderr)}`);

      // The README shows a first run on a fresh bucket; revisions depend on what ran before.
      const revisions = (text: string) =>
        [...text.matchAll(/^PUT user\.7 (\d+)/gm)].map((m) => +m[1]!);
      const shown = blockAfter("It prints", "");
      const normal = (text: string) => text.replace(/^PUT user\.7 \d+/gm, "PUT user.7 N");
      assert.equal(normal(stdout), normal(shown));
      const [first, second] = revisions(stdout);
      assert.equal(second, first! + 1, "the update follows the set");
      assert.deepEqual(revisions(shown), [1, 2]);

      // "Then curl .../keys/user.7 shows the same value through the edge."
      const got = await fetch(`${url}/v1/buckets/demo/keys/user.7`);
      assert.equal(got.status, 200);
      assert.deepEqual(await got.json(), { name: "Grace Hopper" });
    });

    await t.step("SIGTERM stops the worker and its embedded nats-server", async () => {
      const info = JSON.parse(await Deno.readTextFile(`${dir}/.data/nats/embedded.json`));
      edge.child.kill("SIGTERM");
      const status = await edge.exited;
      assert.equal(status.code, 0, edge.output());
      await waitFor(() => !pidAlive(info.pid), { timeoutMs: 15_000, message: "nats-server gone" });
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

Deno.test("every relative link in the README and docs/ resolves, anchors included", async () => {
  const slug = (heading: string) =>
    heading.trim().toLowerCase().replace(/[^\w\- ]/g, "").replaceAll(" ", "-");
  const anchorsOf = async (path: string) => {
    const text = await Deno.readTextFile(path);
    const out = new Set<string>();
    for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) out.add(slug(m[1]!));
    return out;
  };
  const pages = [`${ROOT}README.md`, `${ROOT}examples/orders/README.md`];
  for await (const e of Deno.readDir(`${ROOT}docs`)) {
    if (e.isFile && e.name.endsWith(".md")) pages.push(`${ROOT}docs/${e.name}`);
  }
  const broken: string[] = [];
  for (const page of pages) {
    // Links in code blocks are examples, not links.
    const text = (await Deno.readTextFile(page)).replace(/^```[\s\S]*?^```/gm, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/i.test(link)) continue;
      const [path = "", anchor] = link.split("#", 2);
      const target = path === "" ? page : new URL(path, `file://${page}`).pathname;
      try {
        await Deno.stat(target);
      } catch {
        broken.push(`${page.slice(ROOT.length)}: ${link} (no such file)`);
        continue;
      }
      if (anchor && target.endsWith(".md") && !(await anchorsOf(target)).has(anchor)) {
        broken.push(`${page.slice(ROOT.length)}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("the docs name every worker variable and every openCache() option", async () => {
  const http = await Deno.readTextFile(`${ROOT}docs/http.md`);
  const config = await Deno.readTextFile(`${ROOT}host/edge_config.ts`);
  const vars = new Set(config.match(/\bKVEDGE_[A-Z_]+\b/g));
  assert.ok(vars.size > 10, "the worker's variables are found");
  const undocumented = [...vars].filter((v) => !http.includes(`\`${v}\``));
  assert.deepEqual(undocumented, [], "every KVEDGE_ variable is in docs/http.md");

  const options = await Deno.readTextFile(`${ROOT}docs/options.md`);
  const types = await Deno.readTextFile(`${ROOT}src/types/options.ts`);
  const body = /export interface CacheOptions[^{]*\{([\s\S]*?)\n\}/.exec(types)?.[1] ?? "";
  const names = [...body.matchAll(/^ {2}(?:readonly )?([a-zA-Z]+)\??:/gm)].map((m) => m[1]!);
  assert.ok(names.length > 10, "the options are found");
  const missing = names.filter((n) =>
    !options.includes(`**\`${n}\`**`) && !options.includes(`**\`${n}.`)
  );
  assert.deepEqual(missing, [], "every option of openCache() is in docs/options.md");
});

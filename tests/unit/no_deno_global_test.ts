/**
 * The library runs on Bun, Node and workerd as well as Deno, so no code under
 * `src/` (nor `mod.ts`) refers to the `Deno` global: not `Deno.x`, not
 * `globalThis.Deno`, not `globalThis["Deno"]`. Comments may name it (JSDoc
 * examples serve with `Deno.serve`); code and string literals may not.
 * Deno-only code belongs in host/ and workers/. Starts no server.
 */
import assert from "node:assert/strict";
import { ROOT, tsFiles } from "./_source.ts";

/**
 * `source` split into code (comments blanked out) and the contents of its
 * string literals, so each can be searched on its own. Template literals'
 * `${…}` parts are code. Regular expression literals are not recognised:
 * the library has none that contain a quote or a comment opener.
 */
export function splitSource(source: string): { code: string; strings: string[] } {
  let code = "";
  const strings: string[] = [];
  // One entry per open template literal: the `{` depth at which its `${` began.
  const templates: number[] = [];
  let depth = 0;
  let i = 0;
  const readString = (quote: string): void => {
    let text = "";
    for (i++; i < source.length && source[i] !== quote; i++) {
      if (source[i] === "\\") i++;
      text += source[i] ?? "";
    }
    i++;
    strings.push(text);
    code += '""';
  };
  const readTemplate = (): void => {
    // At a "`" or at the "}" that ends a `${…}`: read text up to "${" or "`".
    let text = "";
    for (i++; i < source.length; i++) {
      if (source[i] === "\\") {
        text += source[++i] ?? "";
      } else if (source[i] === "`") {
        i++;
        strings.push(text);
        code += '""';
        return;
      } else if (source[i] === "$" && source[i + 1] === "{") {
        i += 2;
        strings.push(text);
        code += '"" + (';
        templates.push(++depth);
        return;
      } else {
        if (source[i] === "\n") code += "\n";
        text += source[i];
      }
    }
  };
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      code += " " + source.slice(i, stop).replace(/[^\n]/g, ""); // keeps line numbers
      i = stop;
    } else if (c === '"' || c === "'") {
      readString(c);
    } else if (c === "`") {
      readTemplate();
    } else if (c === "{") {
      depth++;
      code += c;
      i++;
    } else if (c === "}" && templates.at(-1) === depth) {
      templates.pop();
      depth--;
      code += ") + ";
      readTemplate();
    } else {
      if (c === "}") depth--;
      code += c;
      i++;
    }
  }
  return { code, strings };
}

/** Where `source` refers to the Deno global: `line: text` per hit. */
export function denoReferences(source: string): string[] {
  const { code, strings } = splitSource(source);
  const hits: string[] = [];
  code.split("\n").forEach((line, n) => {
    if (/(?<![\w$.])Deno\b/.test(line) || /\.\s*Deno\b/.test(line)) {
      hits.push(`${n + 1}: ${line.trim()}`);
    }
  });
  for (const s of strings) if (s === "Deno") hits.push(`string literal "Deno"`);
  return hits;
}

Deno.test("the reference finder sees the Deno global in code and nowhere else", async (t) => {
  await t.step("finds it in code, through globalThis, in a template's code", () => {
    assert.equal(denoReferences("const pid = Deno.pid;").length, 1);
    assert.equal(denoReferences("(globalThis as any).Deno?.unrefTimer?.(t);").length, 1);
    assert.equal(denoReferences('const d = (globalThis as any)["Deno"];').length, 1);
    assert.equal(denoReferences("const tmp = `${path}.tmp-${Deno.pid}`;").length, 1);
    assert.equal(denoReferences("if (e instanceof Deno.errors.NotFound) {}").length, 1);
    assert.deepEqual(denoReferences("/**\n * x\n */\nconst s = `a\nb`;\nDeno.exit();"), [
      "6: Deno.exit();",
    ]);
  });
  await t.step("ignores comments, strings and other names", () => {
    assert.deepEqual(denoReferences("// serve with Deno.serve(app.fetch)\nconst a = 1;"), []);
    assert.deepEqual(denoReferences("/**\n * `Deno.serve` calls it\n */\nf();"), []);
    assert.deepEqual(denoReferences('const m = "needs Deno 2, Bun or Node";'), []);
    assert.deepEqual(denoReferences("const m = `on ${runtime}: Deno or Bun`;"), []);
    assert.deepEqual(denoReferences("const myDeno = 1; const DenoLike = 2;"), []);
  });
});

Deno.test("no file under src/ nor mod.ts refers to the Deno global", async () => {
  const files = ["mod.ts", ...await tsFiles("src")];
  assert.ok(files.length > 20, `found only ${files.length} files`);
  const bad: string[] = [];
  for (const file of files) {
    const source = await Deno.readTextFile(new URL(file, ROOT));
    for (const hit of denoReferences(source)) bad.push(`${file}:${hit}`);
  }
  assert.deepEqual(bad, [], "Deno-only code belongs in host/ or workers/");
});

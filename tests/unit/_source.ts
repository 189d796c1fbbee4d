/**
 * Reading the project's own source, for the tests that check its shape
 * (layout, owners, no Deno global, function sizes): the project root, every
 * `.ts` file under a folder, and text without comments.
 *
 * @module
 */

/** The project root. */
export const ROOT: URL = new URL("../../", import.meta.url);

/**
 * Every `.ts` file under `dir` (relative to the project root), sorted.
 *
 * @example
 * ```ts ignore
 * const files = await tsFiles("src"); // ["src/async.ts", …]
 * ```
 */
export async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await tsFiles(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/**
 * `text` without its block comments and whole-line `//` comments (a JSDoc
 * example imports and assigns too).
 *
 * @example
 * ```ts ignore
 * withoutComments("/** x *\/\nconst a = 1;"); // "\nconst a = 1;"
 * ```
 */
export function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

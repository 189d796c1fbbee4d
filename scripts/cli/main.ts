/**
 * A script's life on the terminal: {@link runMain} turns every failure into
 * one line and an exit code, {@link confirm} asks before a destructive step.
 *
 * @module
 */
import { CliError, oneLine, UsageError } from "./errors.ts";
import { eprintln, writeAllSync } from "./output.ts";

const encoder = new TextEncoder();

/**
 * Runs a script's `main`, turning every failure into one line on stderr
 * (`<program>: error: ...`) and an exit code: 2 for usage, 1 otherwise, never
 * a stack trace. `main` returns the exit code for success paths.
 *
 * @example
 * ```ts ignore
 * import { runMain } from "./main.ts";
 * await runMain("kv", async () => 0);
 * ```
 */
export async function runMain(program: string, main: () => Promise<number>): Promise<never> {
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    eprintln(`${program}: error: ${oneLine(e.reason)}`);
    Deno.exit(1);
  });
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof UsageError) {
      eprintln(`${program}: error: ${oneLine(err)} (see --help)`);
      code = 2;
    } else if (err instanceof CliError) {
      eprintln(`${program}: error: ${oneLine(err)}`);
      code = err.exitCode;
    } else {
      eprintln(`${program}: error: ${oneLine(err)}`);
      code = 1;
    }
  }
  Deno.exit(code);
}

/**
 * Asks a yes/no question on the terminal; refuses (throws {@link CliError})
 * when stdin is not a terminal, so scripts must pass `-f`.
 *
 * @example
 * ```ts ignore
 * import { confirm } from "./main.ts";
 * if (await confirm("Delete bucket demo?")) console.log("gone");
 * ```
 */
export async function confirm(question: string): Promise<boolean> {
  if (!Deno.stdin.isTerminal()) {
    throw new CliError(`${question} Refusing without a terminal to confirm; pass -f to force`);
  }
  writeAllSync(Deno.stderr, encoder.encode(`${question} [y/N] `));
  const buf = new Uint8Array(256);
  const n = await Deno.stdin.read(buf);
  const answer = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n)).trim();
  return /^y(es)?$/i.test(answer);
}

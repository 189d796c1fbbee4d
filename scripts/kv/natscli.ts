/**
 * The `kv` subcommands that the real `nats kv` (natscli 0.5.0) has and this
 * CLI does not re-implement (`edit`, `revert`, `compact`): `deno task kv`
 * hands them to natscli, against the server it would itself use (`--server`,
 * `$NATS_URL`, else the embedded server of `deno task serve`, else the
 * default), with `--no-context` so that a saved `nats context` does not point
 * elsewhere. Why these are not cloned: docs/cli.md, "Why `deno task kv`
 * exists".
 *
 * @module
 */
import { natsCliBinary } from "../../host/nats_binary.ts";
import type { FlagValues } from "../cli/args.ts";
import { chooseServer, EMBEDDED_DATA_DIR } from "../cli/connect.ts";
import { CliError, UsageError } from "../cli/errors.ts";
import { eprintln } from "../cli/output.ts";

/**
 * The subcommands run by natscli, with the one line `deno task kv --help`
 * shows for each.
 *
 * @example
 * ```ts
 * import { NATSCLI_COMMANDS } from "./natscli.ts";
 * console.log(Object.keys(NATSCLI_COMMANDS)); // ["edit", "revert", "compact"]
 * ```
 */
export const NATSCLI_COMMANDS: Readonly<Record<string, string>> = {
  edit: "Edits an existing bucket's configuration",
  revert: "Reverts a key to an earlier revision (a put of that value)",
  compact: "Reclaims the space of deleted keys",
};

/**
 * The arguments natscli gets for `deno task kv <global flags> <command>
 * <rest>`: the connection flags translated (`--timeout` in milliseconds),
 * `-s` only when a server was named or found, then `kv <command> <rest>`
 * unchanged. `server` is where `deno task kv` would connect when no flag
 * names one (`undefined`: let natscli read `$NATS_URL`).
 *
 * @example
 * ```ts
 * import { natscliArgs } from "./natscli.ts";
 * console.log(natscliArgs("edit", ["b", "--history", "7"], { timeout: 5000 }, "nats://127.0.0.1:4333"));
 * // ["--no-context", "--timeout=5000ms", "-s", "nats://127.0.0.1:4333", "kv", "edit", "b", "--history", "7"]
 * ```
 */
export function natscliArgs(
  command: string,
  rest: string[],
  flags: FlagValues,
  server: string | undefined,
): string[] {
  if (flags.json === true) {
    throw new UsageError(`${command}: --json is not available (natscli runs it, without JSON)`);
  }
  const args = ["--no-context"];
  if (typeof flags.timeout === "number") args.push(`--timeout=${flags.timeout}ms`);
  const named = typeof flags.server === "string" ? flags.server : server;
  if (named !== undefined) args.push("-s", named);
  for (const name of ["creds", "user", "password", "token"]) {
    const v = flags[name];
    if (typeof v === "string") args.push(`--${name}=${v}`);
  }
  return [...args, "kv", command, ...rest];
}

/**
 * Runs `nats kv <command> <rest>` with the terminal's stdin, stdout and
 * stderr, and returns its exit code. Without natscli (no `KVEDGE_NATS_CLI`,
 * no `.tools/bin/nats`) it fails with one line saying how to get it.
 *
 * @example
 * ```ts ignore
 * import { runNatscli } from "./natscli.ts";
 * Deno.exit(await runNatscli("compact", ["orders", "-f"], { server: "nats://127.0.0.1:4222" }));
 * ```
 */
export async function runNatscli(
  command: string,
  rest: string[],
  flags: FlagValues,
): Promise<number> {
  const binary = natsCliBinary();
  const missing = () =>
    new CliError(
      `${command} is run by the real nats CLI (natscli), which is not installed: ` +
        "run bash scripts/setup.sh where Go is present, or set KVEDGE_NATS_CLI",
    );
  if (binary === undefined) throw missing();
  let server: string | undefined;
  const help = rest.includes("--help") || rest.includes("-h");
  if (!help && typeof flags.server !== "string" && !Deno.env.get("NATS_URL")) {
    const chosen = await chooseServer();
    server = chosen.server;
    if (chosen.from === "embedded") {
      eprintln(`kv: using the embedded nats-server of \`deno task serve\` at ${server}`);
    } else {
      eprintln(
        `kv: using ${server}: no --server, no NATS_URL, no running \`deno task serve\` under ` +
          `${EMBEDDED_DATA_DIR}/`,
      );
    }
  }
  const args = natscliArgs(command, rest, flags, server);
  try {
    const child = new Deno.Command(binary, {
      args,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return (await child.status).code;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw missing();
    throw err;
  }
}

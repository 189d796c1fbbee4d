/**
 * `deno task kv <command>`: a `nats kv`-compatible operator CLI for the
 * JetStream KV buckets kvedge uses (standard layout: stream `KV_<bucket>`,
 * subjects `$KV.<bucket>.>`), so it and the real `nats kv` work on the same
 * buckets. Run `deno task kv --help` for the commands.
 *
 * Human output is aligned tables; `--json` prints JSON (one document, or one
 * line per event for `watch`). Errors are one line on stderr with exit code 1,
 * or 2 for a usage mistake.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { commandHelp, parseArgs } from "./cli/args.ts";
import { connectFlags, connectFromFlags, GLOBAL_FLAGS } from "./cli/connect.ts";
import { UsageError } from "./cli/errors.ts";
import { runMain } from "./cli/main.ts";
import { eprintln, println, quote } from "./cli/output.ts";
import { findCommand, mainHelp, PROGRAM } from "./kv/spec.ts";
import type { Ctx } from "./kv/context.ts";
import { cmdAdd, cmdInfo, cmdLs, cmdMirror } from "./kv/buckets.ts";
import { cmdDel, cmdGet, cmdHistory, cmdKeys, cmdPurge, cmdWatch, writeCmd } from "./kv/keys.ts";
import { NATSCLI_COMMANDS, runNatscli } from "./kv/natscli.ts";

const HANDLERS: Record<string, (ctx: Ctx) => Promise<number>> = {
  add: cmdAdd,
  info: cmdInfo,
  ls: cmdLs,
  put: (ctx) => writeCmd(ctx, "put"),
  get: cmdGet,
  create: (ctx) => writeCmd(ctx, "create"),
  update: (ctx) => writeCmd(ctx, "update"),
  del: cmdDel,
  purge: cmdPurge,
  history: cmdHistory,
  keys: cmdKeys,
  watch: cmdWatch,
  mirror: cmdMirror,
};

async function main(argv: string[]): Promise<number> {
  // The command is the first positional; flags before it must be global ones.
  const first = parseArgs(leadingGlobals(argv).globals, [GLOBAL_FLAGS]);
  const rest = leadingGlobals(argv).rest;
  const name = rest[0];
  if (name === undefined || name === "help") {
    const topic = name === "help" ? rest[1] : undefined;
    if (topic !== undefined) {
      if (Object.hasOwn(NATSCLI_COMMANDS, topic)) return await runNatscli(topic, ["--help"], {});
      const cmd = findCommand(topic);
      if (!cmd) throw new UsageError(`unknown command ${quote(topic)}`);
      println(commandHelp(PROGRAM, cmd, GLOBAL_FLAGS));
      return 0;
    }
    if (first.help || name === "help") {
      println(mainHelp());
      return 0;
    }
    eprintln(mainHelp());
    return 2;
  }
  // What natscli has and this CLI does not clone (edit, revert, compact) is run by natscli.
  if (Object.hasOwn(NATSCLI_COMMANDS, name)) {
    return await runNatscli(name, rest.slice(1), first.flags);
  }
  const cmd = findCommand(name);
  if (!cmd) throw new UsageError(`unknown command ${quote(name)}`);
  const parsed = parseArgs([...leadingGlobals(argv).globals, ...rest.slice(1)], [
    GLOBAL_FLAGS,
    cmd.flags,
  ]);
  if (parsed.help || first.help) {
    println(commandHelp(PROGRAM, cmd, GLOBAL_FLAGS));
    return 0;
  }
  const required = cmd.args.filter((a) => a.required);
  if (parsed.positionals.length < required.length) {
    throw new UsageError(
      `${cmd.name}: missing argument <${required[parsed.positionals.length]!.name}>`,
    );
  }
  if (parsed.positionals.length > cmd.args.length) {
    throw new UsageError(
      `${cmd.name}: unexpected argument ${quote(parsed.positionals[cmd.args.length]!)}`,
    );
  }
  let nc: NatsConnection | undefined;
  const ctx: Ctx = {
    cmd,
    args: parsed.positionals,
    flags: parsed.flags,
    json: parsed.flags.json === true,
    connect: async () =>
      nc ??= await connectFromFlags({ ...connectFlags(parsed.flags), program: "kv" }),
  };
  try {
    return await HANDLERS[cmd.name]!(ctx);
  } finally {
    if (nc) await nc.close().catch(() => {});
  }
}

/** Splits `argv` into the global flags before the command and everything from the command on. */
function leadingGlobals(argv: string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("-") || a === "-") return { globals, rest: argv.slice(i) };
    if (a === "--") return { globals, rest: argv.slice(i + 1) };
    globals.push(a);
    const name = a.startsWith("--") ? a.slice(2) : a.slice(1);
    const spec = a.startsWith("--")
      ? GLOBAL_FLAGS[name]
      : Object.values(GLOBAL_FLAGS).find((f) => f.short === name);
    const takesValue = spec !== undefined && spec.type !== "boolean" && !a.includes("=");
    if (takesValue && i + 1 < argv.length) globals.push(argv[++i]!);
  }
  return { globals, rest: [] };
}

if (import.meta.main) {
  await runMain("kv", () => main(Deno.args));
}

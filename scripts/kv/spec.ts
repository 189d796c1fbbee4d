/**
 * The command table of `deno task kv`: every command's names, arguments and
 * flags, and the top-level help rendered from it.
 *
 * @module
 */
import { commandHelp, type CommandSpec, type FlagSpec } from "../cli/args.ts";
import { GLOBAL_FLAGS } from "../cli/connect.ts";
import { NATSCLI_COMMANDS } from "./natscli.ts";

/** The program name shown in usage lines. */
export const PROGRAM = "deno task kv";

const FORCE: FlagSpec = { type: "boolean", short: "f", help: "act without confirmation" };

const BUCKET_ARG = { name: "bucket", help: "the bucket to act on", required: true };
const KEY_ARG = { name: "key", help: "the key to act on", required: true };

/** Every command of `deno task kv`: names, arguments and flags. */
export const COMMANDS: CommandSpec[] = [
  {
    name: "add",
    aliases: ["new"],
    summary: "Adds a new KV bucket",
    description:
      "Adds a new KV bucket (stream KV_<bucket>). Adding a bucket that exists with the same settings is a no-op; with different settings it fails.",
    args: [BUCKET_ARG],
    flags: {
      history: {
        type: "int",
        // As openCache()'s `create` and `deno task serve`, so that re-adding
        // a bucket they made is a no-op (`nats kv add` defaults to 1).
        default: 10,
        min: 1,
        max: 64,
        placeholder: "N",
        help: "how many historic values to keep per key",
      },
      ttl: {
        type: "duration",
        placeholder: "DURATION",
        help: "how long to keep values (1h, 30s…)",
      },
      replicas: {
        type: "int",
        default: 1,
        min: 1,
        max: 5,
        placeholder: "N",
        help: "how many replicas of the data to store",
      },
      "max-value-size": {
        type: "bytes",
        placeholder: "BYTES",
        help: "largest value accepted (e.g. 64KiB)",
      },
      "max-bucket-size": {
        type: "bytes",
        aliases: ["max-bytes"],
        placeholder: "BYTES",
        help: "most bytes the bucket may hold",
      },
      storage: {
        type: "string",
        default: "file",
        choices: ["file", "f", "memory", "m"],
        help: "storage backend",
      },
      description: { type: "string", placeholder: "TEXT", help: "a description for the bucket" },
      "marker-ttl": {
        type: "duration",
        placeholder: "DURATION",
        help:
          "keep delete markers this long, at least 1s, so edges see keys expire; allows put --ttl (nats-server 2.11+)",
      },
    },
  },
  {
    name: "info",
    aliases: ["status", "view"],
    summary: "Shows a bucket's configuration and state, or every bucket's status",
    args: [{ name: "bucket", help: "the bucket to show (default: all buckets)" }],
    flags: {},
  },
  {
    name: "ls",
    aliases: ["list"],
    summary: "Lists the buckets, or the keys of a bucket",
    args: [
      { name: "bucket", help: "list this bucket's keys instead of the buckets" },
      { name: "filter", help: "key filter with * and > wildcards (default all keys)" },
    ],
    flags: { names: { type: "boolean", short: "n", help: "show just the bucket names" } },
  },
  {
    name: "put",
    summary: "Puts a value into a key",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; read from stdin when - or omitted",
    }],
    flags: {
      ttl: {
        type: "duration",
        placeholder: "DURATION",
        help:
          "expire the key after this long, at least 1s (nats-server 2.11+, a bucket added with --marker-ttl)",
      },
    },
  },
  {
    name: "get",
    summary: "Gets the value of a key",
    args: [BUCKET_ARG, KEY_ARG],
    flags: {
      revision: { type: "int", min: 1, placeholder: "N", help: "get a specific revision" },
      raw: { type: "boolean", help: "print only the value's bytes" },
    },
  },
  {
    name: "create",
    summary: "Puts a value into a key only if the key is new or its last operation was a delete",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; read from stdin when - or omitted",
    }],
    flags: {},
  },
  {
    name: "update",
    summary: "Updates a key if its current revision is the one given (compare-and-set)",
    args: [BUCKET_ARG, KEY_ARG, {
      name: "value",
      help: "the value to store; - reads stdin",
      required: true,
    }, { name: "revision", help: "the revision the key must be at", required: true }],
    flags: {},
  },
  {
    name: "del",
    aliases: ["rm"],
    summary: "Deletes a key, or the entire bucket when no key is given",
    args: [BUCKET_ARG, {
      name: "key",
      help: "the key to delete (omitted: remove the whole bucket)",
    }],
    flags: { force: FORCE },
  },
  {
    name: "purge",
    summary: "Deletes a key and all of its history, leaving a purge marker",
    args: [BUCKET_ARG, KEY_ARG],
    flags: { force: FORCE },
  },
  {
    name: "history",
    summary: "Shows the full history of a key",
    args: [BUCKET_ARG, KEY_ARG],
    flags: {},
  },
  {
    name: "keys",
    summary: "Lists the keys of a bucket (deleted keys excluded)",
    args: [BUCKET_ARG, {
      name: "filter",
      help: "key filter with * and > wildcards (default all keys)",
    }],
    flags: {},
  },
  {
    name: "watch",
    summary: "Watches the bucket or some keys for changes, until interrupted",
    args: [BUCKET_ARG, { name: "filter", help: "key filter (default >, all keys)" }],
    flags: {
      history: { type: "boolean", help: "include historic values" },
      deletes: {
        type: "boolean",
        default: true,
        help: "include deletes (--no-deletes to skip them)",
      },
      updates: { type: "boolean", help: "only show new values written" },
      revision: { type: "int", min: 1, placeholder: "N", help: "start from this revision" },
      count: { type: "int", min: 1, placeholder: "N", help: "exit after N events" },
    },
  },
  {
    name: "mirror",
    summary: "Creates a region's mirror of a hub bucket on the server connected to (a leaf node)",
    description:
      "Creates KV_<bucket> on the connected server (a leaf node in its own JetStream domain) as a mirror of the hub's KV_<bucket> through the hub's domain, with the bucket's history, TTL and size limits; regional edges then read it with region: { hubDomain }. A mirror that exists already is kept. See docs/topologies.md.",
    args: [BUCKET_ARG],
    flags: {
      "hub-domain": {
        type: "string",
        placeholder: "DOMAIN",
        help: "the hub's JetStream domain (required)",
      },
      replicas: {
        type: "int",
        default: 1,
        min: 1,
        max: 5,
        placeholder: "N",
        help: "replicas of the mirror in the region",
      },
    },
  },
];

/** The command called `name` (or one of its aliases), if any. */
export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

/** The top-level `--help` text: the commands and the global flags. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = [
    `usage: ${PROGRAM} [global flags] <command> [args] [flags]`,
    "",
    "Interacts with JetStream KV buckets, like `nats kv`.",
    "",
    "commands:",
    ...COMMANDS.map((c) =>
      `  ${c.name.padEnd(width)}  ${c.summary}${
        c.aliases?.length ? ` (aliases: ${c.aliases.join(", ")})` : ""
      }`
    ),
    "",
    "run by the real `nats kv` (natscli, from .tools/bin or $KVEDGE_NATS_CLI) against the same server:",
    ...Object.entries(NATSCLI_COMMANDS).map(([name, summary]) =>
      `  ${name.padEnd(width)}  ${summary}`
    ),
    "",
    "global flags:",
    flagsHelpOfGlobals(),
    "",
    `Run \`${PROGRAM} <command> --help\` for a command's arguments and flags.`,
  ];
  return lines.join("\n");
}

function flagsHelpOfGlobals(): string {
  return commandHelp(PROGRAM, { name: "", summary: "", args: [], flags: {} }, GLOBAL_FLAGS)
    .split("global flags:\n")[1]!;
}

/**
 * The scripts' argument parser (scripts/cli/args.ts) reads argv as it did
 * before it was put on node:util's parseArgs: every case below is what the
 * hand-written parser answered (clusters, negative numbers, `--no-`, aliases,
 * `--`, inline values, and each usage message). Starts no server.
 */
import assert from "node:assert/strict";
import { type FlagSpec, parseArgs } from "../../scripts/cli/args.ts";
import { UsageError } from "../../scripts/cli/errors.ts";

const SPEC: Record<string, FlagSpec> = {
  history: { type: "int", help: "", min: 1, short: "H" },
  force: { type: "boolean", help: "", short: "f" },
  dry: { type: "boolean", help: "", short: "n", aliases: ["dry-run"] },
  ttl: { type: "duration", help: "" },
  mode: { type: "string", help: "", choices: ["a", "b"], short: "m" },
};

/** argv, then the parse or the usage error's `Name: message`. */
const CASES: [string[], unknown][] = [
  [["--history", "5", "demo"], {
    "positionals": ["demo"],
    "flags": { "history": 5 },
    "help": false,
  }],
  [["--history=5"], { "positionals": [], "flags": { "history": 5 }, "help": false }],
  [["--history"], "UsageError: flag --history needs a value"],
  [["-H3"], { "positionals": [], "flags": { "history": 3 }, "help": false }],
  [["-fn"], { "positionals": [], "flags": { "force": true, "dry": true }, "help": false }],
  [["-fH4", "x"], {
    "positionals": ["x"],
    "flags": { "force": true, "history": 4 },
    "help": false,
  }],
  [["-fz"], "UsageError: unknown flag -z"],
  [["-f-"], "UsageError: unknown flag --"],
  [["--no-force"], { "positionals": [], "flags": { "force": false }, "help": false }],
  [["--no-history"], "UsageError: unknown flag --no-history"],
  [["--force=false"], { "positionals": [], "flags": { "force": false }, "help": false }],
  [["--force=yes"], 'UsageError: flag --force takes true or false, got "yes"'],
  [["--dry-run"], { "positionals": [], "flags": { "dry": true }, "help": false }],
  [["--ttl", "5m"], { "positionals": [], "flags": { "ttl": 300000 }, "help": false }],
  [["--mode", "c"], 'UsageError: flag --mode must be one of a, b, got "c"'],
  [["-ma"], { "positionals": [], "flags": { "mode": "a" }, "help": false }],
  [["-5"], { "positionals": ["-5"], "flags": {}, "help": false }],
  [["-1.5", "x"], { "positionals": ["-1.5", "x"], "flags": {}, "help": false }],
  [["a", "-", "b"], { "positionals": ["a", "-", "b"], "flags": {}, "help": false }],
  [["--", "-f", "--x"], { "positionals": ["-f", "--x"], "flags": {}, "help": false }],
  [["--help"], { "positionals": [], "flags": {}, "help": true }],
  [["-fh"], "UsageError: unknown flag -h"],
  [["--help=1"], "UsageError: unknown flag --help"],
  [["--unknown"], "UsageError: unknown flag --unknown"],
  [["--mode", "--force"], 'UsageError: flag --mode must be one of a, b, got "--force"'],
  [["-H", "-5"], 'UsageError: flag -H takes an integer, got "-5"'],
  [["--history", "3", "--history", "4"], {
    "positionals": [],
    "flags": { "history": 4 },
    "help": false,
  }],
  [["--=x"], "UsageError: unknown flag --"],
];

Deno.test("parseArgs answers every argv as the hand-written parser did", () => {
  for (const [argv, expected] of CASES) {
    let got: unknown;
    try {
      got = parseArgs(argv, [SPEC]);
    } catch (err) {
      assert.ok(err instanceof UsageError, `${JSON.stringify(argv)}: ${err}`);
      got = `${err.name}: ${err.message}`;
    }
    assert.deepEqual(got, expected, JSON.stringify(argv));
  }
});

/**
 * Where the local store's bytes per entry go: the growth of V8 heap +
 * external memory (after forced GCs) per entry for N keys `mem.<i>` with
 * 200-byte ASCII JSON values (the memory scenario's data), of the store
 * filled by `put()` and of its parts on their own. Each figure is measured in
 * a process of its own.
 *
 * ```sh
 * deno run -A scripts/bench/_store_bytes.ts            # every part, 100k entries
 * deno run -A scripts/bench/_store_bytes.ts --n 1000000
 * ```
 *
 * @module
 */
import { LocalStore } from "../../src/local_store.ts";
import { flagsHelp, type FlagSpec, parseArgs } from "../cli/args.ts";
import { UsageError } from "../cli/errors.ts";
import { runMain } from "../cli/main.ts";

const PARTS = {
  store: "LocalStore, maxItems N, filled by put() (values never read: cold)",
  read: "the same store after a peek() of every key (every slot in the Map)",
  keys: "the key strings alone (in an array of 8 B a slot, counted)",
  "keys+map": "the key strings in a Map<string, number> (no array)",
  vals: "the values as one-byte strings (in an array)",
  bytes: "the values as copied Uint8Arrays (in an array)",
  doubles: "an array of N doubles (the array's own cost)",
} as const;
type Part = keyof typeof PARTS;

const enc = new TextEncoder();
const dec = new TextDecoder();

function valueJson(i: number): string {
  const head = `{"id":${i},"pad":"`;
  const pad = (i.toString(36) + "abcdefghijklmnopqrstuvwxyz").repeat(20);
  return head + pad.slice(0, 200 - head.length - 2) + '"}';
}

function used(): number {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 4; i++) gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

function measure(part: Part, n: number): number {
  // Inputs as the watcher hands them over: flat subject strings, fresh bytes.
  const subjects = Array.from({ length: n }, (_, i) => dec.decode(enc.encode(`$KV.b.mem.${i}`)));
  const raws = Array.from({ length: n }, (_, i) => enc.encode(valueJson(i)));
  const warm = new LocalStore({ maxItems: 10 });
  warm.put("x", 1, 1, raws[0]);
  warm.get("x");
  const m0 = used();
  let kept: unknown;
  if (part === "store" || part === "read") {
    const s = new LocalStore({ maxItems: n });
    for (let i = 0; i < n; i++) s.put(subjects[i]!.substring(6), i + 1, Date.now(), raws[i]);
    if (part === "read") { for (let i = 0; i < n; i++) s.peek(`mem.${i}`); }
    kept = s;
  } else if (part === "keys") {
    kept = subjects.map((s) => s.substring(6));
  } else if (part === "keys+map") {
    const m = new Map<string, number>();
    for (let i = 0; i < n; i++) m.set(subjects[i]!.substring(6), i);
    kept = m;
  } else if (part === "vals") {
    kept = raws.map((r) => dec.decode(r));
  } else if (part === "bytes") {
    kept = raws.map((r) => r.slice());
  } else {
    kept = Array.from({ length: n }, (_, i) => i + 0.5);
  }
  const m1 = used();
  // Keeps the inputs and the result alive up to the second measurement.
  if (subjects.length + raws.length === 0 || kept === undefined) {
    throw new Error("nothing measured");
  }
  return (m1 - m0) / n;
}

const FLAGS: Record<string, FlagSpec> = {
  n: { type: "int", min: 1, default: 100_000, help: "entries", placeholder: "N" },
  child: { type: "boolean", help: "measure the one part named, in this process" },
};

const USAGE = `usage: deno run -A scripts/bench/_store_bytes.ts [part] [flags]

parts (default: each in a process of its own):
${Object.entries(PARTS).map(([part, what]) => `  ${part}: ${what}`).join("\n")}

flags:
${flagsHelp(FLAGS)}`;

async function main(argv: string[]): Promise<number> {
  const { flags, positionals, help } = parseArgs(argv, [FLAGS]);
  if (help) {
    console.log(USAGE);
    return 0;
  }
  const n = flags.n as number;
  const [only, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (only !== undefined && !(only in PARTS)) {
    throw new UsageError(`unknown part ${JSON.stringify(only)}`);
  }
  if (only !== undefined && flags.child === true) {
    console.log(measure(only as Part, n).toFixed(1));
    return 0;
  }
  for (const part of Object.keys(PARTS) as Part[]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        import.meta.filename!,
        part,
        "--child",
        "--n",
        String(n),
      ],
      stderr: "inherit",
    }).output();
    console.log(
      `${new TextDecoder().decode(out.stdout).trim().padStart(7)} B/entry  ${part}: ${PARTS[part]}`,
    );
  }
  return 0;
}

if (import.meta.main) await runMain("_store_bytes", () => main(Deno.args));

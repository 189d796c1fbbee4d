/**
 * `deno task torture`'s flags, read by the project's one argv parser: the
 * same flags and defaults as before, every mistake a `UsageError`, and the
 * replay command read back to the schedule it names. Starts no server.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../host/usage_error.ts";
import { parseArgs, replayCommand } from "./args.ts";
import { GENERATIONS, LATEST_GEN, MODE_NAMES } from "./schedule.ts";

Deno.test("torture flags: defaults, every flag, and the replay command read back", async (t) => {
  await t.step("no flag: the defaults", () => {
    const o = parseArgs([]);
    assert.ok(Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 31);
    assert.deepEqual({ ...o, seed: 0 }, {
      seed: 0,
      schedules: 20,
      modes: [...MODE_NAMES],
      budgetMs: Infinity,
      shrinkMs: 180_000,
      failFast: false,
      gen: LATEST_GEN,
      projection: false,
      help: false,
    });
  });

  await t.step("every flag", () => {
    const o = parseArgs([
      "--seed",
      "7",
      "--schedules",
      "3",
      "--modes",
      MODE_NAMES.slice(0, 2).join(","),
      "--server",
      "/bin/nats-server",
      "--budget-ms",
      "5000",
      "--steps",
      "2,3,13",
      "--shrink-ms",
      "0",
      "--fail-fast",
      "--gen",
      String(GENERATIONS[0]),
      "--projection",
    ]);
    assert.deepEqual(o, {
      seed: 7,
      schedules: 3,
      modes: MODE_NAMES.slice(0, 2),
      server: "/bin/nats-server",
      budgetMs: 5000,
      steps: [2, 3, 13],
      shrinkMs: 0,
      failFast: true,
      gen: GENERATIONS[0],
      projection: true,
      help: false,
    });
    assert.equal(parseArgs(["--help"]).help, true);
  });

  await t.step("the replay command gives back its schedule", () => {
    const mode = MODE_NAMES[0]!;
    const cmd = replayCommand(91351, mode, { server: "/x/nats-server", gen: LATEST_GEN }, [1, 4]);
    const o = parseArgs(cmd.split(" ").slice(3));
    assert.deepEqual(
      [o.seed, o.schedules, o.modes, o.gen, o.server, o.steps],
      [91351, 1, [mode], LATEST_GEN, "/x/nats-server", [1, 4]],
    );
  });
});

Deno.test("torture flags: every mistake is a UsageError", () => {
  for (
    const args of [
      ["--seed"],
      ["--seed", "-1"],
      ["--seed", "x"],
      ["--schedules", "1.5"],
      ["--modes", "no-such-mode"],
      ["--steps", "1,x"],
      ["--gen", "999"],
      ["--frob"],
      ["stray"],
    ]
  ) {
    assert.throws(() => parseArgs(args), UsageError, args.join(" "));
  }
});

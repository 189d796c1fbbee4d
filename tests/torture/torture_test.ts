/**
 * The fault-schedule checker in `deno task test`: a fixed budget of seeded
 * schedules over every mode family against the server under test
 * (`KVEDGE_NATS_SERVER`), and the recorded seeds that found issue 18's holes.
 * `deno task torture --schedules N` runs more (tests/torture/main.ts).
 */
import assert from "node:assert/strict";
import { parseArgs } from "./args.ts";
import { torture } from "./main.ts";

/** Seed of the CI run; `KVEDGE_TORTURE_SEED` picks another one. */
const SEED = Number(Deno.env.get("KVEDGE_TORTURE_SEED") ?? 20261206);

async function check(args: string[]): Promise<void> {
  const lines: string[] = [];
  const report = await torture({ ...parseArgs(args), shrinkMs: 0 }, (l) => lines.push(l));
  assert.ok(report.schedules > 0, "ran no schedule");
  assert.deepEqual(
    report.failures.map((f) => f.replay),
    [],
    `the checker found violations:\n${lines.join("\n")}`,
  );
}

Deno.test({
  name: "seeded fault schedules over every mode keep the rules of freshness",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    check([
      "--seed",
      String(SEED),
      "--schedules",
      "40",
      "--budget-ms",
      "90000",
      "--modes",
      "lazy,replica,snapshot,loader,schema",
    ]),
});

Deno.test({
  name: "seeded fault schedules on a regional edge keep the rules and a truthful status",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    check([
      "--seed",
      String(SEED),
      "--schedules",
      "20",
      "--budget-ms",
      "45000",
      "--modes",
      "regional",
    ]),
});

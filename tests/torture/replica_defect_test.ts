/**
 * The checker sets a 2.9 cluster schedule aside only for the replica defect's
 * own symptom: values KV holds, seen at a revision a replica out of step holds
 * them at. The evidence is that of torture seed 10102602 on 2.9.10 (replay 14
 * of 40, 2026-12-06): the nodes held `first 1 last 2 msgs 2` (n1) and
 * `first 1 last 1 msgs 1` (n2, n3), and a fresh replica's readers got
 * `PUT k5@2` and then `PUT k5@1`, KV's.
 */
import assert from "node:assert/strict";
import { type ChangeObservation, type Evidence, judge, type Violation } from "./checker.ts";
import { type ReplicaHolds, shiftedRevisions, unexplained } from "./replica_defect.ts";

const ID = "s10102602-7";

function evidence(changes: ChangeObservation[]): Evidence {
  return {
    histories: [[], [{ key: "k5", revision: 1, operation: "PUT", id: ID, at: 0 }]],
    purges: [],
    written: new Map([[ID, { key: "k5", epoch: 1, revision: 1, ttl: false }]]),
    badPuts: [],
    blindPurges: [],
    reads: [],
    changes,
    readerEnds: [],
    loaderCalls: new Map(),
    schema: false,
  };
}

function change(n: number, revision: number, reader: "fast" | "slow" = "fast"): ChangeObservation {
  return {
    inst: 3,
    reader,
    n,
    key: "k5",
    operation: "PUT",
    revision,
    id: ID,
    epoch: 1,
    mayRepeat: false,
  };
}

/** n1 holds k5 at 2, the others at 1. */
const NODES: ReplicaHolds[] = [
  { name: "n1", held: new Map([[2, [{ key: "k5", id: ID }]]]) },
  { name: "n2", held: new Map() },
  { name: "n3", held: new Map() },
];

Deno.test("replica defect: what replicas out of step explain, and nothing else", async (t) => {
  const seen = evidence([change(1, 2), change(2, 1), change(1, 2, "slow")]);
  const violations = judge(seen);

  await t.step("seed 10102602's violations are each a value at n1's revision", () => {
    assert.equal(violations.length, 3, violations.map((v) => v.message).join("\n"));
    assert.deepEqual(shiftedRevisions(violations), [2]);
    const { left, explainedBy } = unexplained(violations, NODES);
    assert.deepEqual(left, []);
    assert.deepEqual(explainedBy, [`a replica (asked via n1) holds k5 ${ID} at 2 (KV: 1)`]);
  });

  await t.step("not when no node holds the value at that revision", () => {
    const { left } = unexplained(violations, [NODES[1]!, NODES[2]!]);
    assert.equal(left.length, 3);
  });

  await t.step("a change told twice (the edge's doing) is never set aside", () => {
    const repeated = judge(evidence([change(1, 1), change(2, 1)]));
    assert.equal(repeated.length, 1);
    assert.match(repeated[0]!.message, /repeated/);
    assert.deepEqual(unexplained([...violations, ...repeated], NODES).left, repeated);
  });

  await t.step(
    "a violation with no shift, or a shift to KV's own revision, is never set aside",
    () => {
      const other: Violation = { rule: "rule 5", message: "k0: cache absent, KV 4 s-3" };
      const same: Violation = {
        rule: "values",
        message: "planted",
        shifted: [{ key: "k5", id: ID, revision: 2, kvRevision: 2 }],
      };
      assert.deepEqual(unexplained([...violations, other, same], NODES).left, [other, same]);
    },
  );
});

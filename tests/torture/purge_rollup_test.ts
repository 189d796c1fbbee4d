/**
 * A key's purge rolls every older message of the key out of the stream, its
 * deletes too. The evidence is that of torture seed 11829849 (replica, no
 * fault): `k5` was put at 1, deleted at 3, updated at 5, deleted by the
 * cache at 7, put at 13 and 19, purged at 20. A read raced the watcher and
 * got revision 1, a later one answered absent (past 7), a bookmarked one got
 * 19: all right. The checker, given only what the stream held at the end
 * (`20:PURGE`), took the purge for the first removal after 1 and called 19
 * resurrected. The runner now reads the history before each key purge.
 */
import assert from "node:assert/strict";
import { type Evidence, judge, type ReadObservation, type ReadResult } from "./checker.ts";
import type { Revision } from "./history.ts";

const T0 = 1_000_000;

const put = (revision: number, id: string): Revision => ({
  key: "k5",
  revision,
  operation: "PUT",
  id,
  at: T0 + revision,
});
const removal = (revision: number, operation: "DEL" | "PURGE"): Revision => ({
  key: "k5",
  revision,
  operation,
  at: T0 + revision,
});

/** KV's whole history of `k5`, as read before the purge. */
const FULL = [
  put(1, "s-0"),
  removal(3, "DEL"),
  put(5, "s-4"),
  removal(7, "DEL"),
  put(13, "s-12"),
  put(19, "s-18"),
  removal(20, "PURGE"),
];

function read(step: number, how: ReadObservation["how"], result: ReadResult): ReadObservation {
  const synced = { state: "synced", connected: true };
  return {
    inst: 0,
    key: "k5",
    how,
    step,
    start: T0 + step * 2,
    end: T0 + step * 2 + 1,
    epoch: 0,
    before: synced,
    after: synced,
    outage: false,
    lastDisturbance: 0,
    ...(how === "getAt" ? { bookmark: 19, allowStale: false, epochAfter: 0 } : {}),
    result,
  };
}

const value = (id: string, revision: number): ReadResult => ({
  kind: "value",
  id,
  revision,
  source: "hit",
  stale: false,
});

function evidence(
  history: Revision[],
  last: ReadResult,
  o: { first?: ReadObservation; blindPurges?: Evidence["blindPurges"] } = {},
): Evidence {
  const ids = ["s-0", "s-4", "s-12", "s-18"];
  const revs = [1, 5, 13, 19];
  return {
    histories: [history],
    purges: [],
    written: new Map(
      ids.map((id, i) => [id, { key: "k5", epoch: 0, revision: revs[i]!, ttl: false }]),
    ),
    badPuts: [],
    blindPurges: o.blindPurges ?? [],
    reads: [
      o.first ?? read(3, "getEntry", value("s-0", 1)),
      read(10, "getEntry", { kind: "absent" }),
      read(12, "getAt", last),
    ],
    changes: [],
    readerEnds: [],
    loaderCalls: new Map(),
    schema: false,
  };
}

const rule2 = (ev: Evidence) => judge(ev).filter((v) => v.rule === "rule 2");

Deno.test("rule 2 is judged on the history read before a key's purge", async (t) => {
  await t.step("absent after a delete, then a later put: not a resurrection", () => {
    assert.deepEqual(judge(evidence(FULL, value("s-18", 19))), []);
  });
  await t.step("the put the delete removed, served after the absent answer, is one", () => {
    const first = read(6, "getEntry", value("s-4", 5));
    const v = rule2(evidence(FULL, value("s-4", 5), { first }));
    assert.equal(v.length, 1, JSON.stringify(v));
    assert.match(
      v[0]!.message,
      /returned revision 5 after answering absent past the removal at revision 7/,
    );
  });
  await t.step("with only what the purge left, the later put looks resurrected", () => {
    const v = rule2(evidence([removal(20, "PURGE")], value("s-18", 19)));
    assert.equal(v.length, 1, JSON.stringify(v));
  });
  await t.step("a purge whose history could not be read first accuses nothing", () => {
    const blindPurges = [{ key: "k5", epoch: 0 }];
    const ev = evidence([removal(20, "PURGE")], value("s-18", 19), { blindPurges });
    assert.deepEqual(rule2(ev), []);
  });
});

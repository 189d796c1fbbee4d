import assert from "node:assert/strict";
import { AppliedMark, judgeResume } from "../../src/resume_check.ts";

const applied = { seq: 201, key: "w.199", op: "PUT" } as const;

Deno.test("a resumed consumer whose first message is another key at the applied revision means the replicas diverged", () => {
  const v = judgeResume(applied, { seq: 201, key: "w.201", op: "PUT" });
  assert.equal(v.kind, "diverged");
  assert.ok(v.kind === "diverged" && v.reason.startsWith("replicas disagree at revision 201"));
  assert.match(v.kind === "diverged" ? v.reason : "", /"w\.199".*"w\.201"/);
});

Deno.test("the same key with another operation at the applied revision means the replicas diverged", () => {
  assert.equal(judgeResume(applied, { seq: 201, key: "w.199", op: "DEL" }).kind, "diverged");
  assert.equal(
    judgeResume({ seq: 7, key: "a", op: "DEL" }, { seq: 7, key: "a", op: "PURGE" }).kind,
    "diverged",
  );
});

Deno.test("the applied message itself at the applied revision is the same (dropped as already applied)", () => {
  assert.deepEqual(judgeResume(applied, { seq: 201, key: "w.199", op: "PUT" }), { kind: "same" });
});

Deno.test("a first message past the applied revision gives no verdict (the revision left the stream)", () => {
  // The key at 201 was written again, removed by the history limit, or purged.
  assert.deepEqual(judgeResume(applied, { seq: 202, key: "w.201", op: "PUT" }), {
    kind: "unknown",
  });
  assert.deepEqual(judgeResume(applied, { seq: 300, key: "w.199", op: "PUT" }), {
    kind: "unknown",
  });
});

Deno.test("AppliedMark: what was delivered at a revision, only for the revision noted last", () => {
  const mark = new AppliedMark();
  assert.equal(mark.at(0), undefined);
  mark.note(7, "user.1", "DEL");
  assert.deepEqual(mark.at(7), { seq: 7, key: "user.1", op: "DEL" });
  assert.equal(mark.at(8), undefined);
  mark.note(9, "user.2", "PUT");
  assert.equal(mark.at(7), undefined);
  assert.deepEqual(mark.at(9), { seq: 9, key: "user.2", op: "PUT" });
  mark.forget();
  assert.equal(mark.at(9), undefined);
});

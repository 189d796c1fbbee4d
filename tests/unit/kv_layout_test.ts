import assert from "node:assert/strict";
import { headers } from "@nats-io/nats-core";
import {
  bucketOfStream,
  kvStreamName,
  kvSubject,
  kvSubjectPrefix,
  operationOf,
  ttlHeaderValue,
  ttlOfHeader,
} from "../../src/kv_layout.ts";
import { versionAtLeast } from "../../src/server_version.ts";

function h(pairs: Record<string, string>) {
  const out = headers();
  for (const [k, v] of Object.entries(pairs)) out.set(k, v);
  return out;
}

Deno.test("kv_layout reads every kind of KV message the same way", async (t) => {
  await t.step("names follow the standard KV layout", () => {
    assert.equal(kvStreamName("users"), "KV_users");
    assert.equal(kvSubjectPrefix("users"), "$KV.users.");
    assert.equal(kvSubject("users", "a.b"), "$KV.users.a.b");
    assert.equal(bucketOfStream("KV_users"), "users");
    assert.equal(bucketOfStream("ORDERS"), undefined);
  });

  await t.step("client operations and server markers map to PUT, DEL, PURGE", () => {
    assert.equal(operationOf(undefined), "PUT");
    assert.equal(operationOf(h({})), "PUT");
    assert.equal(operationOf(h({ "KV-Operation": "DEL" })), "DEL");
    assert.equal(operationOf(h({ "KV-Operation": "PURGE", "Nats-Rollup": "sub" })), "PURGE");
    assert.equal(operationOf(h({ "Nats-Marker-Reason": "MaxAge" })), "PURGE");
    assert.equal(operationOf(h({ "Nats-Marker-Reason": "Purge" })), "PURGE");
    assert.equal(operationOf(h({ "Nats-Marker-Reason": "Remove" })), "DEL");
    assert.equal(operationOf(h({ "Nats-Marker-Reason": "Future" })), "PURGE");
    assert.equal(
      operationOf(h({ "KV-Operation": "DEL", "Nats-Marker-Reason": "MaxAge" })),
      "DEL",
      "the client's KV-Operation decides when present",
    );
  });

  await t.step("TTLs become whole seconds, rounded up", () => {
    assert.equal(ttlHeaderValue(1000), "1s");
    assert.equal(ttlHeaderValue(1500), "2s");
    assert.equal(ttlHeaderValue(60_000), "60s");
  });

  await t.step("server versions compare numerically", () => {
    assert.ok(versionAtLeast("2.15.2", "2.11.0"));
    assert.ok(versionAtLeast("2.11.0", "2.11.0"));
    assert.ok(versionAtLeast("2.11.0-RC.1", "2.11.0"));
    assert.ok(!versionAtLeast("2.9.10", "2.11.0"));
    assert.ok(!versionAtLeast("2.10.99", "2.11.0"));
    assert.ok(!versionAtLeast(undefined, "2.11.0"));
  });
});

Deno.test("a message's own TTL is read from its Nats-TTL header", () => {
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "2s" })), 2_000);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "30" })), 30_000);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "1500ms" })), 1_500);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "1m30s" })), 90_000);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "1h" })), 3_600_000);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": ttlHeaderValue(1_500) })), 2_000);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "never" })), 0);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "soon" })), 0);
  assert.equal(ttlOfHeader(h({ "Nats-TTL": "5s later" })), 0);
  assert.equal(ttlOfHeader(h({})), 0);
  assert.equal(ttlOfHeader(undefined), 0);
});

/**
 * A replica rebuilt without its bucket being recreated: its watcher found
 * that the replica its consumer reads holds another message at the revision
 * it applied last (nats-server 2.9.10 replicas out of step after a paused
 * leader, docs/nats-versions.md; torture seed 10102602). The proxy plays that
 * replica: it delivers one message under another key.
 */
import assert from "node:assert/strict";
import type { KV } from "@nats-io/kv";
import { type Change, openCache } from "../../mod.ts";
import { waitFor } from "../_setup.ts";
import { deliveredSeq, type Proxy, serverBehindProxy } from "../_proxy.ts";

Deno.test("a replica rebuilt on a replica out of step tells changes() readers only what changed", async () => {
  await using t = await edgeBehindProxy("replica");
  const { proxy, kv, c, got, reading } = t;
  // The consumer delivers revision 3 (`k3`) as `kx`: what an out-of-step
  // replica holds there.
  const other = await threeWritesThirdAsKx(t);
  assert.deepEqual(got.map((ch) => `${ch.key}@${ch.revision}`), ["k1@1", "k2@2", "kx@3"]);
  other.release();
  // The connection drops; the watcher resumes at revision 3, finds `k3` there
  // and rebuilds the replica from the stream.
  proxy.cut();
  await waitFor(() => !c.status().connected, { message: "the cache sees the cut" });
  proxy.restore();
  await waitFor(() => c.status().resyncs > 0 && c.status().state === "synced", {
    timeoutMs: 20_000,
    message: "the cache rebuilds and syncs",
  });
  assert.match(c.status().lastResyncReason ?? "", /replicas disagree at revision 3/);
  assert.equal(c.peek("k3"), "c");
  assert.equal(c.peek("kx"), undefined);
  // A write after the rebuild: once the reader has it, it has everything before.
  await kv.put("k4", JSON.stringify("d"));
  await waitFor(() => got.some((ch) => ch.key === "k4"), { message: "the reader gets k4" });
  c.close();
  await reading;
  // k1@1 and k2@2 were told already and are unchanged: not told again; k3@3 is news.
  assert.deepEqual(got.map((ch) => `${ch.key}@${ch.revision}`), [
    "k1@1",
    "k2@2",
    "kx@3",
    "k3@3",
    "k4@4",
  ]);
});

Deno.test("reconciliation's revision check rebuilds a replica whose consumer delivered a message the stream does not hold there, with no reconnect", async () => {
  // The consumer delivers revision 3 (`k3`) as `kx`, and nothing else goes
  // wrong: no cut, no gap, no leader change, the last revision equal to the
  // stream's. Only asking the stream for its message at revision 3 tells.
  await using t = await edgeBehindProxy("replica", { reconcileMs: 200 });
  const { proxy, kv, c } = t;
  const other = await threeWritesThirdAsKx(t);
  other.release();
  await waitFor(() => c.status().resyncs > 0 && c.status().state === "synced", {
    timeoutMs: 20_000,
    message: "the cache rebuilds and syncs",
  });
  assert.match(
    c.status().lastResyncReason ?? "",
    /^replicas disagree at revision 3 \(applied PUT "kx", the stream now holds PUT "k3" there\); reconciliation's revision check$/,
  );
  assert.equal(c.peek("k3"), "c");
  assert.equal(c.peek("kx"), undefined);
  assert.equal(c.status().lastRevision, 3);
  // Where the stream agrees, the check changes nothing: five revision checks
  // later (leader gets the proxy saw), still the one rebuild.
  const resyncs = c.stats().resyncs;
  await kv.put("k4", JSON.stringify("d"));
  await waitFor(() => c.peek("k4") === "d", { message: "the cache gets k4" });
  let checks = 0;
  const counting = proxy.hold((f) => {
    if (f.from === "client" && f.subject === `$JS.API.STREAM.MSG.GET.KV_${t.bucket}`) checks++;
    return false;
  });
  await waitFor(() => checks >= 5, { message: "five revision checks" });
  counting.release();
  assert.equal(c.stats().resyncs, resyncs);
  assert.equal(c.peek("k4"), "d");
});

Deno.test("a lazy edge re-reading after a stream info that went backwards tells changes() readers nothing twice", async () => {
  // A stale answer to a stream info (the stream's last sequence below what
  // the edge applied, its creation time unchanged) makes the edge rebuild
  // and re-read the revisions after it: the readers had them.
  await using t = await edgeBehindProxy("lazy");
  const { proxy, kv, c, got, reading } = t;
  for (const [k, v] of [["k1", "a"], ["k2", "b"], ["k3", "c"]]) await kv.put(k!, JSON.stringify(v));
  await waitFor(() => got.length === 3, { message: "the reader gets the three changes" });
  let stale = 0;
  const behind = proxy.alter((f, bytes) => {
    if (f.from !== "server" || stale > 0 || (f.op !== "MSG" && f.op !== "HMSG")) return undefined;
    const text = new TextDecoder().decode(bytes);
    if (!text.includes("stream_info_response") || !text.includes(`"last_seq":3,`)) return undefined;
    stale++;
    return new TextEncoder().encode(text.replace(`"last_seq":3,`, `"last_seq":1,`));
  });
  proxy.cut();
  await waitFor(() => !c.status().connected, { message: "the cache sees the cut" });
  proxy.restore();
  await waitFor(() => c.status().resyncs > 0 && c.status().state === "synced", {
    timeoutMs: 20_000,
    message: "the cache rebuilds and syncs",
  });
  behind.release();
  assert.equal(stale, 1);
  assert.match(c.status().lastResyncReason ?? "", /stream sequence went backwards/);
  await kv.put("k4", JSON.stringify("d"));
  await waitFor(() => got.some((ch) => ch.key === "k4"), { message: "the reader gets k4" });
  c.close();
  await reading;
  assert.deepEqual(got.map((ch) => `${ch.key}@${ch.revision}`), ["k1@1", "k2@2", "k3@3", "k4@4"]);
});

/**
 * A server, a bucket (history 5), and an edge of `mode` connected through a
 * frame-altering proxy, with a `changes()` reader collecting into `got`;
 * disposing it closes the edge, the connection, the proxy and the server.
 */
async function edgeBehindProxy(mode: "replica" | "lazy", more: { reconcileMs?: number } = {}) {
  const t = await serverBehindProxy({ history: 5 });
  const c = await openCache<string>({
    ...more,
    servers: t.proxy.url,
    bucket: t.bucket,
    mode,
    local: { maxItems: 1_000 },
    connectOptions: { reconnectTimeWait: 100, ignoreClusterUpdates: true },
  }).catch(async (err) => {
    await t[Symbol.asyncDispose]();
    throw err;
  });
  await c.ready({ timeoutMs: 10_000 });
  const got: Change<string>[] = [];
  const reading = (async () => {
    for await (const ch of c.changes()) got.push(ch);
  })();
  return {
    proxy: t.proxy,
    bucket: t.bucket,
    kv: t.kv,
    c,
    got,
    reading,
    async [Symbol.asyncDispose]() {
      await c.close();
      await t[Symbol.asyncDispose]();
    },
  };
}

/**
 * Puts k1, k2, k3 while `t.proxy` delivers revision 3 as `kx` (what an
 * out-of-step replica holds there), and waits until the reader has the
 * three; returns the alteration, for the caller to release.
 */
async function threeWritesThirdAsKx(
  t: { proxy: Proxy; bucket: string; kv: KV; got: Change<string>[] },
) {
  const { proxy, bucket, kv, got } = t;
  const stream = `KV_${bucket}`;
  const other = proxy.alter((f, bytes) => {
    if (f.from !== "server" || deliveredSeq(f.reply, stream) !== 3) return undefined;
    const text = new TextDecoder().decode(bytes);
    return new TextEncoder().encode(text.replace(`$KV.${bucket}.k3 `, `$KV.${bucket}.kx `));
  });
  await kv.put("k1", JSON.stringify("a"));
  await kv.put("k2", JSON.stringify("b"));
  await kv.put("k3", JSON.stringify("c"));
  await waitFor(() => got.length === 3, { message: "the reader gets the three changes" });
  return other;
}

/**
 * How cost grows, on the two axes that matter for an edge cache:
 *
 * - keys: replica `ready()` time, peak RSS and bytes per entry just
 *   bootstrapped at 100k and 1M keys (3M with `--big`) against the raw
 *   `kv.watch()` + Map, fresh process each (the bootstrap scenario's
 *   measurement, over more sizes), and the warm start from a snapshot after
 *   1 % of the keys changed against the cold `ready()` (the warm_start
 *   scenario's; `_scale_keys.ts`);
 * - edges: 1, 10, 100 and 1 000 caches on one bucket, spread over up to 4
 *   processes (one NATS connection each), against as many raw `kv.watch()`
 *   consumers: put → visible at the slowest edge (p50/p99 over the writes),
 *   nats-server CPU per write (`/proc/<pid>/stat`, user + system), the time
 *   until every edge holds the last write, the deliveries edges never saw,
 *   and slow consumers as the server and the client see them
 *   (`_scale_edges.ts`).
 *
 * `--edges 1000` (a comma-separated list) runs only the edges axis at those
 * counts.
 *
 * Each curve is also drawn as a small SVG next to the JSON results.
 *
 * @module
 */
import type { Scenario } from "./_harness.ts";
import { connectRaw } from "./_helpers.ts";
import { benchServer } from "./_processes.ts";
import { type Collected, keysAxis } from "./_scale_keys.ts";
import { edgesAxis, MAX_PROCESSES } from "./_scale_edges.ts";
import { CONVERGE_WAIT_MS } from "./_scale_edge_child.ts";

/** Writes each plot as `<out>/<name>`. */
async function writePlots(out: string, plots: Record<string, string>): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  for (const [name, svg] of Object.entries(plots)) {
    await Deno.writeTextFile(`${out}/${name}`, svg);
  }
}

/** The scale scenario. */
export const scenario: Scenario = {
  name: "scale",
  title:
    "how cost grows: keys (bootstrap time, peak RSS, bytes/entry, warm start) and edges (put→visible, server CPU)",
  async run(ctx) {
    const keySizes = ctx.keys ??
      (ctx.quick
        ? [1_000, 2_000]
        : ctx.big
        ? [100_000, 1_000_000, 3_000_000]
        : [100_000, 1_000_000]);
    // `--keys` or `--edges` alone asks for that axis alone (a 10M point takes long enough).
    const keysToo = ctx.edges === undefined || ctx.keys !== undefined;
    const edgeCounts = ctx.edges ??
      (ctx.keys ? [] : ctx.quick ? [1, 10] : [1, 10, 100, 1_000]);
    const writes = ctx.quick ? 20 : 400;
    const writesPerSec = ctx.quick ? 100 : 100;
    const history = ctx.history ?? 1;
    const server = await benchServer();
    const into: Collected = { rows: [], raw: {}, plots: {} };
    try {
      const nc = await connectRaw(server.url);
      if (keysToo) await keysAxis(ctx, { nc, url: server.url, keySizes, into });
      await edgesAxis(ctx, { server, nc, edgeCounts, writes, writesPerSec, history, into });
      await nc.close();
    } finally {
      await server.stop();
    }
    if (ctx.out !== undefined) await writePlots(ctx.out, into.plots);
    return {
      name: "scale",
      title: this.title,
      params: {
        keySizes: keysToo ? keySizes : [],
        edgeCounts,
        processes: `min(edges, ${MAX_PROCESSES}), one NATS connection each`,
        writes,
        writesPerSec,
        history,
        reps: ctx.reps,
        plots: Object.keys(into.plots),
        keysBytes: "Δ(heapUsed + external) after 4 forced GCs, from before connect to ready(), " +
          "per key, in each cold bootstrap's child (--expose-gc); includes the connection and " +
          "compiled code",
        keysWarm: "after the cold opens: one open with snapshot.path writes the file on close; " +
          "then per rep 1% of the keys rewritten (another 1% each rep) and a fresh process " +
          "reopens from the snapshot; compared with the cold kvedge ready() of the unchanged bucket",
        cpu: "nats-server utime + stime over the write phase / writes (10 ms ticks)",
        latency: "writer's send time (in the value) → change seen, max over all edges, per write",
        converged: `last write sent → every edge's own view (kvedge: a local hit; raw: the last ` +
          `entry yielded) holds its revision; waited at most ${CONVERGE_WAIT_MS} ms`,
        serverView: "/varz slow_consumers Δ over the round; /connz?state=closed reasons; " +
          "/connz pending_bytes sampled every 250 ms",
        clientView: "nc.status() events by type; event-loop lag (10 ms timer); kvedge " +
          "watcher_restart/resync events; raw ordered-consumer resets (nats.js consumer serial)",
      },
      rows: into.rows,
      raw: into.raw,
    };
  },
};

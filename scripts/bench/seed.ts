/**
 * Seed: `deno task seed --generate N` (the CLI, in its own process; its
 * `--json` summary gives keys/s of the write loop, excluding start-up) against
 * a raw pipelined `kv.put` loop over the same generated records with the same
 * window, in this process. A fresh bucket per run; variants alternate.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateRecords } from "../seed/generate.ts";
import { DEFAULT_WINDOW } from "../seed/loop.ts";
import { infoRow, ratioRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw } from "./_helpers.ts";
import { benchServer, DENO, ROOT } from "./_processes.ts";

/** A raw pipelined put loop: at most `window` puts in flight. */
async function rawSeed(kv: KV, count: number, window: number): Promise<number> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let failure: unknown;
  const done = () => {
    inFlight--;
    const w = wake;
    wake = undefined;
    w?.();
  };
  const t0 = performance.now();
  for (const batch of generateRecords({ count })) {
    for (const r of batch) {
      while (inFlight >= window) await new Promise<void>((resolve) => (wake = resolve));
      inFlight++;
      kv.put(r.key, r.bytes!).then(done, (err) => {
        failure ??= err;
        done();
      });
    }
  }
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  if (failure) throw failure;
  return (count * 1000) / (performance.now() - t0);
}

interface CliSummary {
  written: number;
  keysPerSecond: number;
  elapsedMs: number;
}

async function cliSeed(url: string, bucket: string, count: number): Promise<CliSummary> {
  const out = await new Deno.Command(DENO, {
    args: [
      "run",
      "-A",
      "--config",
      `${ROOT}/deno.json`,
      `${ROOT}/scripts/seed.ts`,
      "--server",
      url,
      "--bucket",
      bucket,
      "--create",
      "--generate",
      String(count),
      "--window",
      String(DEFAULT_WINDOW),
      "--json",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(`seed CLI failed: ${new TextDecoder().decode(out.stderr).slice(-1000)}`);
  }
  const r = JSON.parse(text.split("\n").pop()!) as CliSummary;
  if (r.written !== count) throw new Error(`seed CLI wrote ${r.written} of ${count}`);
  return r;
}

/** The seed scenario. */
export const scenario: Scenario = {
  name: "seed",
  title: "deno task seed --generate N vs a raw pipelined kv.put loop (same window)",
  async run(ctx) {
    const count = ctx.quick ? 5_000 : 200_000;
    const server = await benchServer();
    try {
      const nc = await connectRaw(server.url);
      const jsm = await jetstreamManager(nc);
      const kvm = new Kvm(nc);
      const cli: number[] = [];
      const raw: number[] = [];
      const cliWallMs: number[] = [];
      for (let r = 0; r < ctx.reps; r++) {
        ctx.log(`seed: rep ${r + 1}/${ctx.reps} (${count} keys each)`);
        const order = r % 2 === 0 ? ["raw", "cli"] : ["cli", "raw"];
        for (const v of order) {
          const bucket = benchBucket("bench_seed");
          if (v === "raw") {
            const kv = await kvm.create(bucket, { history: 1 });
            raw.push(await rawSeed(kv, count, DEFAULT_WINDOW));
          } else {
            const t0 = performance.now();
            const res = await cliSeed(server.url, bucket, count);
            cliWallMs.push(performance.now() - t0);
            cli.push(res.keysPerSecond);
          }
          await jsm.streams.delete(`KV_${bucket}`);
        }
      }
      await nc.close();
      return {
        name: "seed",
        title: this.title,
        params: { keys: count, window: DEFAULT_WINDOW, valueBytes: 64, reps: ctx.reps },
        rows: [
          ratioRow(
            `seed --generate ${count / 1000}k`,
            "keys/s",
            stat(cli),
            "raw pipelined kv.put",
            stat(raw),
            "ge",
            0.9,
          ),
          infoRow("seed CLI wall time incl. start-up", "ms", stat(cliWallMs), { note: "info" }),
        ],
        raw: { cliKeysPerSecond: cli, rawKeysPerSecond: raw, cliWallMs },
      };
    } finally {
      await server.stop();
    }
  },
};

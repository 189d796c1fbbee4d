/**
 * `deno task seed` (scripts/seed.ts) as a subprocess against a real
 * nats-server, the in-process `seed()` loop, and the input readers.
 */
import assert from "node:assert/strict";
import { type KV, Kvm } from "@nats-io/kv";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { seed, type SeedProgress } from "../../scripts/seed/loop.ts";
import { generateRecords } from "../../scripts/seed/generate.ts";
import { readRecords } from "../../scripts/seed/input.ts";
import type { SeedRecord } from "../../scripts/seed/record.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCRIPT = `${ROOT}scripts/seed.ts`;
const CONFIG = `${ROOT}deno.json`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the seed CLI; stdin is empty unless given. */
async function seedCli(args: string[], stdin?: string): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, SCRIPT, ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NATS_URL: "" },
  }).spawn();
  const w = child.stdin.getWriter();
  if (stdin !== undefined) await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function errLines(r: Run): string[] {
  return r.stderr.trimEnd().split("\n").filter((l) => l !== "");
}

async function tempFile(name: string, text: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_seed_" });
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

async function removeTemp(path: string): Promise<void> {
  await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
}

function ndjson(from: number, to: number, bad: Record<number, string> = {}): string {
  const lines: string[] = [];
  for (let i = from; i <= to; i++) {
    lines.push(bad[i] ?? JSON.stringify({ key: `user.${i}`, value: { id: i, name: `user ${i}` } }));
  }
  return lines.join("\n") + "\n";
}

async function json<T>(kv: KV, key: string): Promise<T | undefined> {
  const e = await kv.get(key);
  return e && e.operation === "PUT" ? e.json<T>() : undefined;
}

Deno.test("seed CLI", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const s = ["--server", server.url];
  const messages = async (b: string) => (await jsm.streams.info(`KV_${b}`)).state.messages;
  try {
    await t.step("a 100k-line NDJSON file loads completely", async () => {
      const b = uniqueBucket();
      const file = await tempFile("users.ndjson", ndjson(1, 100_000));
      try {
        const r = await seedCli([...s, "--bucket", b, "--create", "--json", file]);
        assert.equal(r.code, 0, r.stderr);
        const summary = JSON.parse(r.stdout);
        assert.equal(summary.written, 100_000);
        assert.equal(summary.skipped, 0);
        assert.equal(summary.lastAckedLine, 100_000);
        assert.equal(summary.stopped, undefined);
      } finally {
        await removeTemp(file);
      }
      assert.equal(await messages(b), 100_000);
      const kv = await kvm.open(b);
      for (const i of [1, 2, 777, 31_415, 65_536, 99_999, 100_000]) {
        assert.deepEqual(await json(kv, `user.${i}`), { id: i, name: `user ${i}` });
      }
      // Lines are written in order: revision n holds line n.
      assert.equal((await kv.get("user.31415"))?.revision, 31_415);
    });

    await t.step(
      "malformed lines are reported with their line numbers and skipped by default",
      async () => {
        const b = uniqueBucket();
        await kvm.create(b);
        const text = ndjson(1, 10, {
          3: "{not json",
          5: JSON.stringify({ key: "a..b", value: 1 }),
          7: JSON.stringify({ key: "user.7" }),
          8: "[1,2]",
          9: "   ",
        });
        const r = await seedCli([...s, "--bucket", b], text);
        assert.equal(r.code, 0, r.stderr);
        const errs = errLines(r);
        assert.equal(errs.length, 4, r.stderr);
        assert.match(errs[0]!, /^seed: line 3: invalid JSON/);
        assert.match(errs[1]!, /^seed: line 5: bad key "a\.\.b": .*empty token/);
        assert.match(errs[2]!, /^seed: line 7: missing "value"/);
        assert.match(errs[3]!, /^seed: line 8: expected an object/);
        assert.match(
          r.stdout,
          /^seeded 5 keys in \d+\.\d+ s \(\d+ keys\/s\), 4 skipped; last acknowledged line 10\n$/,
        );
        const kv = await kvm.open(b);
        assert.deepEqual(await kv.get("user.7"), null);
        assert.deepEqual(await json(kv, "user.10"), { id: 10, name: "user 10" });
        assert.equal(await messages(b), 5);
      },
    );

    await t.step(
      "--on-error fail stops at the first bad line, after the writes in flight",
      async () => {
        const b = uniqueBucket();
        await kvm.create(b);
        const file = await tempFile("x.ndjson", ndjson(1, 1000, { 501: "oops", 700: "oops" }));
        try {
          const r = await seedCli([...s, "--bucket", b, "--on-error", "fail", file]);
          assert.equal(r.code, 1);
          assert.match(r.stdout, /^seeded 500 keys .* 1 skipped; last acknowledged line 500\n$/);
          const errs = errLines(r);
          assert.equal(errs.length, 2, r.stderr);
          assert.match(errs[0]!, /^seed: line 501: invalid JSON/);
          assert.match(
            errs[1]!,
            /^seed: error: stopped at line 501: invalid JSON.*; resume with --from-line 501$/,
          );
          assert.equal(await messages(b), 500);
          const kv = await kvm.open(b);
          assert.ok(await kv.get("user.500"));
          assert.equal(await kv.get("user.502"), null);

          // --from-line resumes past the bad line without rewriting earlier ones.
          const again = await seedCli([...s, "--bucket", b, "--from-line", "502", "--json", file]);
          assert.equal(again.code, 0, again.stderr);
          const summary = JSON.parse(again.stdout);
          assert.equal(summary.written, 498);
          assert.equal(summary.skipped, 1); // line 700
          assert.equal(summary.lastAckedLine, 1000);
          assert.equal(await messages(b), 998);
          assert.equal((await kv.get("user.1"))?.revision, 1);
          assert.equal(await kv.get("user.501"), null);
          assert.deepEqual(await json(kv, "user.1000"), { id: 1000, name: "user 1000" });
        } finally {
          await removeTemp(file);
        }
      },
    );

    await t.step("--dry-run validates and counts but writes nothing", async () => {
      const b = uniqueBucket();
      await kvm.create(b);
      const text = ndjson(1, 50, { 10: "garbage" });
      const r = await seedCli([...s, "--bucket", b, "--dry-run"], text);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^validated 49 keys .* 1 skipped; .*\(dry run: nothing written\)\n$/);
      assert.match(r.stderr, /^seed: line 10: invalid JSON/);
      assert.equal(await messages(b), 0);
      // No bucket and no server needed: a dry run does no I/O to NATS.
      const offline = await seedCli(
        ["--server", "nats://127.0.0.1:1", "--dry-run", "--json"],
        text,
      );
      assert.equal(offline.code, 0, offline.stderr);
      assert.equal(JSON.parse(offline.stdout).written, 49);
    });

    await t.step(
      "CSV rows become objects of their other columns, keyed by --key-column",
      async () => {
        const b = uniqueBucket();
        const csv = [
          "id,name,note",
          'u1,Ann,"hello, world"',
          'u2,Bob,"two',
          'lines"',
          "u3,too,many,fields",
          'u4,Dee,"say ""hi"""',
          "",
        ].join("\r\n");
        const file = await tempFile("users.csv", csv);
        try {
          const r = await seedCli([
            ...s,
            "--bucket",
            b,
            "--create",
            "--key-column",
            "id",
            file,
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(errLines(r), ["seed: line 5: expected 3 fields, got 4"]);
          assert.match(r.stdout, /^seeded 3 keys .* 1 skipped/);
          const kv = await kvm.open(b);
          assert.deepEqual(await json(kv, "u1"), { name: "Ann", note: "hello, world" });
          assert.deepEqual(await json(kv, "u2"), { name: "Bob", note: "two\r\nlines" });
          assert.deepEqual(await json(kv, "u4"), { name: "Dee", note: 'say "hi"' });
          const missing = await seedCli([...s, "--bucket", b, "--key-column", "nope", file]);
          assert.equal(missing.code, 1);
          assert.match(
            missing.stderr,
            /^seed: error: --key-column "nope" is not in the CSV header/,
          );
        } finally {
          await removeTemp(file);
        }
      },
    );

    await t.step("a JSON object maps keys to values, read from stdin", async () => {
      const b = uniqueBucket();
      const doc = {
        "cfg.flag": true,
        "cfg.limit": 42,
        "cfg.name": "edge",
        "cfg.nested": { a: [1, 2, { b: null }] },
        "bad key": 1,
      };
      const r = await seedCli(
        [...s, "--bucket", b, "--create", "--json"],
        JSON.stringify(doc, null, 2),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).written, 4);
      assert.match(r.stderr, /^seed: line 5: bad key "bad key"/);
      const kv = await kvm.open(b);
      for (const [k, v] of Object.entries(doc).slice(0, 4)) assert.deepEqual(await json(kv, k), v);
    });

    await t.step("--generate writes N deterministic keys of --value-size bytes", async () => {
      const b1 = uniqueBucket();
      const b2 = uniqueBucket();
      for (const b of [b1, b2]) {
        const r = await seedCli([
          ...s,
          "--bucket",
          b,
          "--create",
          "--generate",
          "1000",
          "--prefix",
          "demo",
          "--value-size",
          "100",
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^seeded 1000 keys/);
      }
      assert.equal(await messages(b1), 1000);
      const kv1 = await kvm.open(b1);
      const kv2 = await kvm.open(b2);
      for (const i of [1, 500, 1000]) {
        const e1 = await kv1.get(`demo.${i}`);
        const e2 = await kv2.get(`demo.${i}`);
        assert.equal(e1?.value.length, 100);
        assert.deepEqual(e1?.value, e2?.value);
        assert.equal(e1?.json<{ n: number }>().n, i);
      }
    });

    await t.step("--schema checks every value against the module's zod schema", async () => {
      const b = uniqueBucket();
      await kvm.create(b);
      const schema = await tempFile(
        "schema.ts",
        'import { z } from "zod";\nexport const schema = z.object({ id: z.number(), name: z.string() });\n',
      );
      try {
        const text = ndjson(1, 4, { 2: JSON.stringify({ key: "user.2", value: { id: "two" } }) });
        const r = await seedCli([...s, "--bucket", b, "--schema", schema], text);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(errLines(r).length, 1);
        assert.match(r.stderr, /^seed: line 2: value does not match the schema at id: /);
        assert.equal(await messages(b), 3);
      } finally {
        await removeTemp(schema);
      }
    });

    await t.step("values over the bucket's max value size are bad records", async () => {
      const b = uniqueBucket();
      await kvm.create(b, { maxValueSize: 100 });
      const text = [
        JSON.stringify({ key: "small", value: "x" }),
        JSON.stringify({ key: "big", value: "y".repeat(200) }),
        JSON.stringify({ key: "small2", value: "z" }),
      ].join("\n");
      const r = await seedCli([...s, "--bucket", b], text);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /^seed: line 2: value is 202 bytes, more than the limit of 100/);
      assert.equal(await messages(b), 2);
    });

    await t.step("mistakes fail with one line: 2 for usage, 1 otherwise", async () => {
      const missing = await seedCli([...s, "--bucket", uniqueBucket(), "--generate", "1"]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^seed: error: bucket "t_\w+" does not exist \(pass --create/);
      for (
        const args of [
          ["--generate", "1"], // no --bucket
          ["--bucket", "b", "--window", "0", "--generate", "1"],
          ["--bucket", "b", "--on-error", "maybe", "--generate", "1"],
          ["--bucket", "b", "--format", "csv", "--generate", "1"],
          ["--bucket", "b", "--nope"],
        ]
      ) {
        const r = await seedCli([...s, ...args]);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
        assert.equal(errLines(r).length, 1, r.stderr);
        assert.match(r.stderr, /^seed: error: /);
      }
      const badBucket = await seedCli([...s, "--bucket", "no.dots", "--generate", "1"]);
      assert.equal(badBucket.code, 1);
      assert.match(badBucket.stderr, /invalid bucket name/);
    });

    await t.step("invalid UTF-8 fails with its line instead of storing U+FFFD", async () => {
      const bucket = uniqueBucket();
      const dir = await Deno.makeTempDir({ prefix: "kvedge_seed_" });
      const path = `${dir}/latin1.ndjson`;
      const enc = new TextEncoder();
      // Line 2 is Latin-1 ("é" as the single byte 0xE9), as exported by an old tool.
      await Deno.writeFile(
        path,
        concatBytes(
          enc.encode('{"key":"a","value":"ok"}\n{"key":"b","value":"caf'),
          new Uint8Array([0xe9]),
          enc.encode('"}\n'),
        ),
      );
      try {
        const r = await seedCli([...s, "--bucket", bucket, "--create", path]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /not valid UTF-8 \(line 2\)/);
        const kv = await new Kvm(nc).open(bucket);
        assert.equal(await kv.get("b"), null, "nothing with a replacement character was stored");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  } finally {
    await nc.close();
  }
});

Deno.test("seed()", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server, { reconnectTimeWait: 50 });
  const kvm = new Kvm(nc);
  try {
    await t.step("keeps at most `window` puts in flight, and fills the window", async () => {
      const kv = await kvm.create(uniqueBucket());
      let inFlight = 0;
      let most = 0;
      const counting: Pick<KV, "put"> = {
        put: async (k, v, o) => {
          most = Math.max(most, ++inFlight);
          try {
            return await kv.put(k, v, o);
          } finally {
            inFlight--;
          }
        },
      };
      const r = await seed({ kv: counting, records: generateRecords({ count: 2000 }), window: 8 });
      assert.equal(r.written, 2000);
      assert.equal(r.lastAckedLine, 2000);
      assert.equal(most, 8);
    });

    await t.step("a write the server refuses is a bad record: skipped, or the stop", async () => {
      const enc = new TextEncoder();
      const rec = (line: number, size: number): SeedRecord => ({
        line,
        key: `k.${line}`,
        value: undefined,
        bytes: enc.encode("x".repeat(size)),
        problem: undefined,
      });
      const records = () => [[rec(1, 10), rec(2, 500), rec(3, 10)]];

      const skipBucket = await kvm.create(uniqueBucket(), { maxValueSize: 100 });
      const bad: [number, string][] = [];
      const skipped = await seed({
        kv: skipBucket,
        records: records(),
        onBadRecord: (line, problem) => bad.push([line, problem]),
      });
      assert.equal(skipped.written, 2);
      assert.equal(skipped.skipped, 1);
      assert.equal(skipped.lastAckedLine, 3);
      assert.equal(bad.length, 1);
      assert.equal(bad[0]![0], 2);
      assert.match(bad[0]![1], /the server refused the write/);

      const failBucket = await kvm.create(uniqueBucket(), { maxValueSize: 100 });
      const failed = await seed({ kv: failBucket, records: records(), onError: "fail" });
      assert.equal(failed.stopped?.line, 2);
      assert.equal(failed.lastAckedLine, 1);
    });

    await t.step(
      "a run cut off by a dead server names a line up to which everything is stored",
      async () => {
        const bucket = uniqueBucket();
        await kvm.create(bucket);
        const kv = await new Kvm(jetstream(nc, { timeout: 1000 })).open(bucket);
        let killed: Promise<void> | undefined;
        const onProgress = (p: SeedProgress) => {
          if (p.written >= 2000 && !killed) killed = server.kill();
        };
        const result = await seed({
          kv,
          records: generateRecords({ count: 200_000 }),
          window: 64,
          onProgress,
          progressIntervalMs: 10,
        });
        await killed;
        assert.ok(result.stopped, "the run stopped");
        assert.match(result.stopped.reason, /write failed/);
        assert.ok(result.lastAckedLine >= 2000, `lastAckedLine ${result.lastAckedLine}`);
        assert.ok(result.lastAckedLine < 200_000);

        await server.restart();
        const keys = new Set<string>();
        await waitFor(async () => {
          keys.clear();
          for await (const k of await kv.keys()) keys.add(k);
          return true;
        }, { timeoutMs: 20_000, message: "keys are listed after the restart" });
        for (let i = 1; i <= result.lastAckedLine; i++) {
          if (!keys.has(`gen.${i}`)) {
            assert.fail(`gen.${i} is missing (lastAckedLine ${result.lastAckedLine})`);
          }
        }
      },
    );
  } finally {
    await nc.close();
  }
});

/** A stream that delivers `text` `size` bytes at a time, to split lines and characters across chunks. */
function chunked(text: string, size: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(off, off + size));
      off += size;
    },
  });
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  opts: Parameters<typeof readRecords>[1],
) {
  const out: SeedRecord[] = [];
  for await (const batch of readRecords(stream, opts)) out.push(...batch);
  return out.map((
    r,
  ) => (r.problem
    ? { line: r.line, problem: r.problem }
    : { line: r.line, key: r.key, value: r.value })
  );
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function chunkedBytes(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(off, off + size));
      off += size;
    },
  });
}

Deno.test("seed input readers", async (t) => {
  await t.step("invalid UTF-8 stops the input with its line, in any chunking", async () => {
    const enc = new TextEncoder();
    const cases: [string, Uint8Array, number][] = [
      // A stray byte, a truncated sequence, an overlong encoding, a lone surrogate.
      ["0xFF", new Uint8Array([0xff]), 3],
      ["truncated", new Uint8Array([0xe2, 0x82]), 3],
      ["overlong", new Uint8Array([0xc0, 0xaf]), 3],
      ["surrogate", new Uint8Array([0xed, 0xa0, 0x80]), 3],
    ];
    for (const [name, badBytes, line] of cases) {
      const input = concatBytes(
        enc.encode('{"key":"a","value":"ü✓"}\n\n{"key":"b","value":"'),
        badBytes,
        enc.encode('"}\n{"key":"c","value":1}\n'),
      );
      for (const size of [1, 2, 3, 5, 1000]) {
        for (const format of ["ndjson", "auto"] as const) {
          await assert.rejects(
            collect(chunkedBytes(input, size), { format }),
            (err: Error) => {
              assert.equal(err.name, "SeedInputError");
              assert.match(err.message, new RegExp(`not valid UTF-8 \\(line ${line}\\)`));
              return true;
            },
            `${name}, chunk size ${size}, ${format}`,
          );
        }
      }
    }
    // The same at the very end of the input (an incomplete last sequence).
    await assert.rejects(
      collect(
        chunkedBytes(
          concatBytes(enc.encode('{"key":"a","value":1}\n'), new Uint8Array([0xf0, 0x9f])),
          4,
        ),
        {
          format: "ndjson",
        },
      ),
      /not valid UTF-8 \(line 2\)/,
    );
  });

  await t.step("an over-long line is a bad record, skipped without holding it", async () => {
    const long = JSON.stringify({ key: "big", value: "x".repeat(10_000) });
    const text = `{"key":"a","value":1}\n${long}\n{"key":"c","value":3}\n${long}`;
    for (const size of [7, 64, 4096, 100_000]) {
      for (const format of ["ndjson", "auto"] as const) {
        assert.deepEqual(
          await collect(chunked(text, size), { format, maxLineChars: 1000 }),
          [
            { line: 1, key: "a", value: 1 },
            { line: 2, problem: "line longer than 1000 characters" },
            { line: 3, key: "c", value: 3 },
            { line: 4, problem: "line longer than 1000 characters" },
          ],
          `chunk size ${size}, ${format}`,
        );
      }
    }
    // A CSV quote that never closes stops the input instead of swallowing it.
    await assert.rejects(
      collect(chunked(`k,v\n1,"never closed\n${"y".repeat(5000)}\n`, 64), {
        format: "csv",
        keyColumn: "k",
        maxLineChars: 1000,
      }),
      /CSV record starting on line 2 is longer than 1000 characters/,
    );
  });

  await t.step("NDJSON survives any chunking, CRLF and multi-byte characters", async () => {
    const text =
      '{"key":"a","value":"héllo ✓"}\r\n\n{"key":"b","value":[1,{"c":"😀"}]}\n{bad\n{"key":"d","value":0}';
    for (const size of [1, 2, 3, 7, 1000]) {
      const got = await collect(chunked(text, size), { format: "auto" });
      assert.equal(got.length, 4, `chunk size ${size}`);
      assert.deepEqual(got[0], { line: 1, key: "a", value: "héllo ✓" });
      assert.deepEqual(got[1], { line: 3, key: "b", value: [1, { c: "😀" }] });
      assert.equal(got[2]!.line, 4);
      assert.match(String(got[2]!.problem), /^invalid JSON/);
      assert.deepEqual(got[3], { line: 5, key: "d", value: 0 });
    }
  });

  await t.step("--from-line skips earlier lines unparsed", async () => {
    const text = "garbage\nmore garbage\n" + '{"key":"x","value":1}\n';
    assert.deepEqual(await collect(chunked(text, 5), { format: "ndjson", fromLine: 3 }), [
      { line: 3, key: "x", value: 1 },
    ]);
  });

  await t.step(
    "CSV quoting, newlines in fields and line numbers survive any chunking",
    async () => {
      const text = 'k,v,w\n1,"a,b","x""y"\n2,"multi\nline",z\n\n3,plain,\n4,short\n';
      for (const size of [1, 2, 5, 1000]) {
        assert.deepEqual(await collect(chunked(text, size), { format: "csv", keyColumn: "k" }), [
          { line: 2, key: "1", value: { v: "a,b", w: 'x"y' } },
          { line: 3, key: "2", value: { v: "multi\nline", w: "z" } },
          { line: 6, key: "3", value: { v: "plain", w: "" } },
          { line: 7, problem: "expected 3 fields, got 2" },
        ], `chunk size ${size}`);
      }
    },
  );

  await t.step("a JSON object's entries are numbered from 1", async () => {
    assert.deepEqual(await collect(chunked('{\n "a": 1,\n "b": {"c": 2}\n}', 3), {}), [
      { line: 1, key: "a", value: 1 },
      { line: 2, key: "b", value: { c: 2 } },
    ]);
  });

  await t.step("generated records are deterministic and exactly --value-size bytes", () => {
    const a = [...generateRecords({ count: 50, valueSize: 80, prefix: "p" })].flat();
    const b = [...generateRecords({ count: 50, valueSize: 80, prefix: "p", fromLine: 41 })].flat();
    assert.equal(a.length, 50);
    assert.equal(b.length, 10);
    assert.equal(a[40]!.key, "p.41");
    assert.deepEqual(a[40]!.bytes, b[0]!.bytes);
    for (const r of a) {
      assert.equal(r.bytes!.length, 80);
      JSON.parse(new TextDecoder().decode(r.bytes));
    }
    assert.notDeepEqual(a[0]!.bytes, a[1]!.bytes);
  });
});

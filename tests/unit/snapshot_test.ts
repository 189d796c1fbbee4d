/**
 * The snapshot file (format 4, columns and key table): written from growing
 * columns (values as bytes or as text), read back verified, and handed out as
 * columns only once the whole file checked out.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadSnapshot, readSnapshot, writeSnapshot } from "../../src/snapshot.ts";
import { checksum } from "../../src/checksum.ts";
import { readAhead } from "../../src/snapshot_file.ts";

const enc = new TextEncoder();
const HEADER = { bucket: "b", filter: ">", epoch: "e1", lastRevision: 42, partial: false };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge-snapshot-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("snapshot: records written as bytes or text come back byte for byte", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/s.snap`;
    const big = "x".repeat(200_000); // forces the buffer to grow
    const written = await writeSnapshot(path, {
      header: HEADER,
      records: (add) => {
        add("a", 1, 1000.5, enc.encode('{"n":1}'));
        add("ключ.ü", 2, 2000, '{"name":"Zoë 🚀"}');
        add("bin", 3, 3000, new Uint8Array([0, 0xff, 0x80]));
        add("empty", 4, 4000, "");
        add("big", 5, 5000, big);
      },
    });
    assert.equal(written.count, 5);
    const r = await readSnapshot(path, { bucket: "b", filter: ">" });
    assert.ok(r.ok);
    assert.equal(r.header.lastRevision, 42);
    assert.deepEqual(
      r.records.map((x) => [x.key, x.rev, x.created, new TextDecoder().decode(x.value)]),
      [
        ["a", 1, 1000.5, '{"n":1}'],
        ["ключ.ü", 2, 2000, '{"name":"Zoë 🚀"}'],
        ["bin", 3, 3000, new TextDecoder().decode(new Uint8Array([0, 0xff, 0x80]))],
        ["empty", 4, 4000, ""],
        ["big", 5, 5000, big],
      ],
    );
    assert.deepEqual([...r.records[2]!.value], [0, 0xff, 0x80]);
    // The iterable form writes the same records.
    const path2 = `${dir}/s2.snap`;
    await writeSnapshot(path2, { header: HEADER, records: r.records });
    const r2 = await readSnapshot(path2, { bucket: "b", filter: ">" });
    assert.ok(r2.ok);
    assert.deepEqual(r2.records, r.records);
    assert.equal(r.header.checksum, written.checksum);
  });
});

Deno.test("snapshot: a refused file hands out no record", async (t) => {
  await withDir(async (dir) => {
    const path = `${dir}/s.snap`;
    await writeSnapshot(path, {
      header: HEADER,
      records: (add) => {
        for (let i = 0; i < 100; i++) add(`k.${i}`, i + 1, 0, `{"i":${i}}`);
      },
    });
    const good = await Deno.readFile(path);
    const load = async (bytes: Uint8Array, accept?: () => string | undefined) => {
      await Deno.writeFile(path, bytes);
      const r = await loadSnapshot(path, { bucket: "b", filter: ">", accept });
      return { r: r.ok ? { ok: true } : r, records: r.ok ? r.image.count : 0 };
    };
    await t.step("intact", async () => {
      const { r, records } = await load(good);
      assert.ok(r.ok);
      assert.equal(records, 100);
    });
    await t.step("one flipped byte in the records", async () => {
      const bad = good.slice();
      bad[bad.length - 3]! ^= 1;
      const { r, records } = await load(bad);
      assert.deepEqual(r, { ok: false, reason: "snapshot checksum mismatch" });
      assert.equal(records, 0);
    });
    await t.step("truncated", async () => {
      const { r, records } = await load(good.subarray(0, good.length - 10));
      assert.equal(r.ok, false);
      assert.equal(records, 0);
    });
    await t.step("refused by accept()", async () => {
      const { r, records } = await load(good, () => "another epoch");
      assert.deepEqual(r, { ok: false, reason: "another epoch" });
      assert.equal(records, 0);
    });
    await t.step("another bucket", async () => {
      await Deno.writeFile(path, good);
      const r = await loadSnapshot(path, { bucket: "other", filter: ">" });
      assert.equal(r.ok, false);
    });
  });
});

/** `bytes` with its trailing checksum recomputed: a file whose checksum is right whatever it says. */
function resealed(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const end = out.length - 16;
  out.set(checksum(out.subarray(0, end)), end);
  return out;
}

/** Replaces the one-digit `"count":N` of a file's header by `count` (same length). */
function withCount(file: Uint8Array, count: number, claimed: number): Uint8Array {
  const out = file.slice();
  const needle = enc.encode(`"count":${count}`);
  const at = out.findIndex((_, i) => needle.every((b, j) => out[i + j] === b));
  assert.ok(at > 0);
  out[at + needle.length - 1] = enc.encode(String(claimed))[0]!;
  return out;
}

Deno.test("snapshot: columns whose size disagrees with the count are refused", async (t) => {
  await withDir(async (dir) => {
    const path = `${dir}/s.snap`;
    const h = await writeSnapshot(path, {
      header: HEADER,
      records: (add) => {
        add("k", 1, 0, "v");
        add("l", 2, 0, "w");
      },
    });
    const good = await Deno.readFile(path);
    const load = async (bytes: Uint8Array) => {
      await Deno.writeFile(path, bytes);
      return await loadSnapshot(path, { bucket: "b", filter: ">" });
    };
    await t.step("a header changed after the checksum: refused by it", async () => {
      const r = await load(withCount(good, h.count, h.count + 1));
      assert.deepEqual(r, { ok: false, reason: "snapshot checksum mismatch" });
    });
    for (const claimed of [h.count + 1, h.count - 1]) {
      await t.step(`count ${claimed} of ${h.count}, checksum right: refused`, async () => {
        const r = await load(resealed(withCount(good, h.count, claimed)));
        assert.deepEqual(r, { ok: false, reason: "snapshot records are corrupt" });
      });
    }
    await t.step("offsets going down, checksum right: refused", async () => {
      const bad = good.slice();
      // From the end: the checksum (16), the value and key blocks (2 + 2),
      // the key table (16 × 4), the value offsets (3 × 4), then the key offsets (3 × 4).
      const keyOffAt = good.length - 16 - (2 + 2) - 64 - 12 - 12;
      const offs = new Uint32Array(bad.buffer, keyOffAt, 3);
      assert.deepEqual([...offs], [0, 1, 2]);
      offs[1] = 2;
      offs[2] = 1;
      const r = await load(resealed(bad));
      assert.deepEqual(r, { ok: false, reason: "snapshot records are corrupt" });
    });
    const tableAt = good.length - 16 - (2 + 2) - 64;
    for (
      const [what, plant] of [
        ["a record twice", (t: Int32Array) => t[t.findIndex((e) => e === 0)] = 1],
        ["an extra entry", (t: Int32Array) => t[t.findIndex((e) => e === -1)] = 1],
        ["a record past the count", (t: Int32Array) => t[t.findIndex((e) => e === 1)] = 2],
        ["no empty position", (t: Int32Array) => t.fill(0)],
      ] as const
    ) {
      await t.step(`key table with ${what}, checksum right: refused`, async () => {
        const bad = good.slice();
        const table = new Int32Array(bad.buffer, tableAt, 16);
        assert.equal(table.filter((e) => e !== -1).length, 2);
        plant(table);
        const r = await load(resealed(bad));
        assert.deepEqual(r, { ok: false, reason: "snapshot records are corrupt" });
      });
    }
    await t.step("the intact file still reads", async () => assert.ok((await load(good)).ok));
  });
});

Deno.test("snapshot: missing, foreign and cut-short files are refused with the reason", async (t) => {
  await withDir(async (dir) => {
    const path = `${dir}/s.snap`;
    await writeSnapshot(path, { header: HEADER, records: (add) => add("k", 1, 0, "v") });
    const good = await Deno.readFile(path);
    const reason = async (bytes: Uint8Array | undefined, bucket = "b", filter = ">") => {
      if (bytes === undefined) await Deno.remove(path).catch(() => {});
      else await Deno.writeFile(path, bytes);
      const r = await readSnapshot(path, { bucket, filter });
      return r.ok ? "(accepted)" : r.reason;
    };
    await t.step("no file", async () => assert.equal(await reason(undefined), "no snapshot file"));
    await t.step("empty file", async () => {
      assert.equal(await reason(new Uint8Array()), "not a kvedge snapshot (bad magic)");
    });
    await t.step("another format", async () => {
      assert.equal(
        await reason(enc.encode('{"not":"a snapshot"}')),
        "not a kvedge snapshot (bad magic)",
      );
    });
    await t.step("format 1 (its partial flag may lie): refused, never trusted", async () => {
      const v1 = good.slice();
      v1.set(enc.encode("KVEDGE-SNAPSHOT 1\n"));
      assert.equal(await reason(v1), "snapshot format 1 is not trusted (its partial flag may lie)");
    });
    await t.step("format 3 (no key table): refused, a cold start", async () => {
      const v3 = good.slice();
      v3.set(enc.encode("KVEDGE-SNAPSHOT 3\n"));
      assert.equal(await reason(v3), "snapshot format 3 (no key table) is no longer read");
    });
    await t.step("format 2 (record by record): refused, a cold start", async () => {
      const v2 = good.slice();
      v2.set(enc.encode("KVEDGE-SNAPSHOT 2\n"));
      assert.equal(await reason(v2), "snapshot format 2 (record by record) is no longer read");
    });
    await t.step("cut inside the magic line", async () => {
      assert.equal(await reason(good.subarray(0, 10)), "not a kvedge snapshot (bad magic)");
    });
    await t.step("cut inside the header", async () => {
      const cut = good.subarray(0, good.indexOf(0x7b) + 5);
      assert.match(await reason(cut), /^snapshot (truncated|checksum mismatch)$/);
    });
    for (const lost of [1, 8, 17, 40]) {
      await t.step(`cut ${lost} bytes short`, async () => {
        const cut = good.subarray(0, good.length - lost);
        assert.equal(await reason(cut), "snapshot checksum mismatch");
      });
    }
    await t.step("header bytes that are not JSON, checksum right", async () => {
      const bad = good.slice();
      bad[good.indexOf(0x7b)] = 0x21; // the header's opening "{" becomes "!"
      assert.equal(await reason(resealed(bad)), "snapshot header is corrupt");
    });
    await t.step("another filter of the same bucket", async () => {
      assert.match(await reason(good, "b", "user.>"), /filter ">", not "b" "user\.>"/);
    });
    await t.step("the intact file still reads", async () => {
      assert.equal(await reason(good), "(accepted)");
    });
  });
});

Deno.test("snapshot: each record keeps its deadline (rule 6 across a warm start)", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/d.snap`;
    await writeSnapshot(path, {
      header: HEADER,
      records: (add) => {
        add("ttl", 1, 10, "v", 1_900_000_000_000);
        add("forever", 2, 20, "w");
      },
    });
    const r = await readSnapshot(path, { bucket: "b", filter: ">" });
    assert.ok(r.ok);
    assert.deepEqual(
      r.records.map((x) => [x.key, x.deadline]),
      [["ttl", 1_900_000_000_000], ["forever", 0]],
    );
  });
});

Deno.test("snapshot: without a deadline the column is left out and every deadline reads 0", async () => {
  await withDir(async (dir) => {
    const write = async (name: string, deadline: number) => {
      const path = `${dir}/${name}.snap`;
      const h = await writeSnapshot(path, {
        header: HEADER,
        records: (add) => {
          for (let i = 0; i < 100; i++) add(`k${i}`, i + 1, 10, "v", i === 50 ? deadline : 0);
        },
      });
      return {
        h,
        size: (await Deno.stat(path)).size,
        r: await readSnapshot(path, { bucket: "b", filter: ">" }),
      };
    };
    const none = await write("none", 0);
    const one = await write("one", 1_900_000_000_000);
    assert.equal(none.h.deadlines, false);
    assert.equal(one.h.deadlines, true);
    // The deadline column, 8 bytes a record (give or take the header's padding to 8:
    // "deadlines":false is a byte longer than "deadlines":true).
    assert.ok(Math.abs(one.size - none.size - 100 * 8) < 8, `${one.size} - ${none.size}`);
    assert.ok(none.r.ok && one.r.ok);
    assert.ok(none.r.records.every((x) => x.deadline === 0));
    assert.deepEqual(
      one.r.records.filter((x) => x.deadline !== 0).map((x) => x.key),
      ["k50"],
    );
  });
});

Deno.test("snapshot: readAhead starts the first read at once and hands it to the first read()", async () => {
  let reads = 0;
  let fail = true;
  const storage = {
    read: () => {
      reads++;
      return fail
        ? Promise.reject(new Error("disk on fire"))
        : Promise.resolve(new Uint8Array([reads]));
    },
    write: () => Promise.resolve(),
  };
  const ahead = readAhead(storage);
  assert.equal(reads, 1); // started before anyone asked
  await new Promise((r) => setTimeout(r, 0)); // its rejection is held, not unhandled
  await assert.rejects(ahead.read(), /disk on fire/);
  assert.equal(reads, 1);
  fail = false;
  assert.deepEqual(await ahead.read(), new Uint8Array([2])); // later calls read anew
  assert.equal(reads, 2);
});

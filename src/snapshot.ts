/**
 * Warm-start snapshots of a replica: values, revisions and the last applied
 * revision in one checksummed file, written atomically.
 *
 * Layout: the magic line `KVEDGE-SNAPSHOT 1\n`, a u32 header length, a JSON
 * header ({@link SnapshotHeader}), then records of
 * `u16 keyLength, key, f64 revision, f64 created, u32 valueLength, value`.
 * The header carries the SHA-256 of the records, so a corrupt or truncated
 * file is detected and never served.
 *
 * @module
 */

const MAGIC = new TextEncoder().encode("KVEDGE-SNAPSHOT 1\n");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What identifies the data in a snapshot. */
export interface SnapshotHeader {
  /** The bucket it was taken from. */
  bucket: string;
  /** The cache's key filter. */
  filter: string;
  /** Creation time of the bucket's stream (its epoch). */
  epoch: string;
  /** Highest revision applied when it was taken. */
  lastRevision: number;
  /** Records in the file. */
  count: number;
  /** Whether the replica had overflowed its bounds (so the snapshot is partial). */
  partial: boolean;
  /** When it was written, epoch ms. */
  savedAt: number;
  /** SHA-256 of the records, hex. */
  sha256: string;
}

/** One record of a snapshot. */
export interface SnapshotRecord {
  /** The key. */
  key: string;
  /** Its revision. */
  rev: number;
  /** When it was written to KV, epoch ms. */
  created: number;
  /** The encoded value. */
  value: Uint8Array;
}

/**
 * Writes `records` to `path` atomically (temporary file, then rename).
 *
 * @example
 * ```ts ignore
 * await writeSnapshot("/tmp/users.snap", header, [{ key: "a", rev: 1, created: 0, value: new Uint8Array() }]);
 * ```
 */
export async function writeSnapshot(
  path: string,
  header: Omit<SnapshotHeader, "count" | "sha256" | "savedAt">,
  records: Iterable<SnapshotRecord>,
): Promise<SnapshotHeader> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let count = 0;
  for (const r of records) {
    const key = encoder.encode(r.key);
    const rec = new Uint8Array(2 + key.length + 8 + 8 + 4 + r.value.length);
    const dv = new DataView(rec.buffer);
    let o = 0;
    dv.setUint16(o, key.length);
    o += 2;
    rec.set(key, o);
    o += key.length;
    dv.setFloat64(o, r.rev);
    o += 8;
    dv.setFloat64(o, r.created);
    o += 8;
    dv.setUint32(o, r.value.length);
    o += 4;
    rec.set(r.value, o);
    chunks.push(rec);
    size += rec.length;
    count++;
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  const full: SnapshotHeader = {
    ...header,
    count,
    savedAt: Date.now(),
    sha256: await sha256(body),
  };
  const head = encoder.encode(JSON.stringify(full));
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, head.length);
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    for (const part of [MAGIC, len, head, body]) {
      let written = 0;
      while (written < part.length) written += await file.write(part.subarray(written));
    }
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  return full;
}

/** Result of reading a snapshot: its header and records, or why it was refused. */
export type SnapshotRead =
  | { ok: true; header: SnapshotHeader; records: SnapshotRecord[] }
  | { ok: false; reason: string };

/**
 * Reads and verifies a snapshot for `bucket`/`filter`. Never throws for a
 * bad file: a missing, corrupt, truncated or foreign file is refused with a reason.
 *
 * @example
 * ```ts ignore
 * const snap = await readSnapshot("/tmp/users.snap", "users", ">");
 * if (snap.ok) console.log(snap.header.lastRevision);
 * ```
 */
export async function readSnapshot(
  path: string,
  bucket: string,
  filter: string,
): Promise<SnapshotRead> {
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { ok: false, reason: "no snapshot file" };
    return { ok: false, reason: `cannot read snapshot: ${(err as Error).message}` };
  }
  if (data.length < MAGIC.length + 4 || !MAGIC.every((b, i) => data[i] === b)) {
    return { ok: false, reason: "not a kvedge snapshot (bad magic)" };
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const headLen = dv.getUint32(MAGIC.length);
  const bodyAt = MAGIC.length + 4 + headLen;
  if (bodyAt > data.length) return { ok: false, reason: "snapshot truncated (header)" };
  let header: SnapshotHeader;
  try {
    header = JSON.parse(decoder.decode(data.subarray(MAGIC.length + 4, bodyAt)));
  } catch {
    return { ok: false, reason: "snapshot header is corrupt" };
  }
  if (header.bucket !== bucket || header.filter !== filter) {
    return {
      ok: false,
      reason:
        `snapshot is of bucket "${header.bucket}" filter "${header.filter}", not "${bucket}" "${filter}"`,
    };
  }
  const body = data.subarray(bodyAt);
  if ((await sha256(body)) !== header.sha256) {
    return { ok: false, reason: "snapshot checksum mismatch" };
  }
  const records: SnapshotRecord[] = [];
  let o = 0;
  try {
    const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    while (o < body.length) {
      const kl = bv.getUint16(o);
      o += 2;
      const key = decoder.decode(body.subarray(o, o + kl));
      o += kl;
      const rev = bv.getFloat64(o);
      o += 8;
      const created = bv.getFloat64(o);
      o += 8;
      const vl = bv.getUint32(o);
      o += 4;
      if (o + vl > body.length) throw new RangeError("record past the end");
      records.push({ key, rev, created, value: body.slice(o, o + vl) });
      o += vl;
    }
  } catch {
    return { ok: false, reason: "snapshot records are corrupt" };
  }
  if (records.length !== header.count) {
    return { ok: false, reason: "snapshot record count mismatch" };
  }
  return { ok: true, header, records };
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

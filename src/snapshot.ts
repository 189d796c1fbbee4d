/**
 * Warm-start snapshots of a replica: values, revisions and the last applied
 * revision in one checksummed file, written atomically.
 *
 * Layout: the magic line `KVEDGE-SNAPSHOT 2\n`, a u32 header length, a JSON
 * header ({@link SnapshotHeader}), then records of
 * `u16 keyLength, key, f64 revision, f64 created, f64 deadline, u32 valueLength, value`
 * (`deadline`: when the value stops being served, wall-clock ms, 0 for never).
 * The header carries the SHA-256 of the records, so a corrupt or truncated
 * file is detected and never served.
 *
 * @module
 */

import { type SnapshotStorage, snapshotStorage } from "./snapshot_file.ts";

/**
 * Format 2: the same layout as 1, but `partial` also covers a lazy cache's
 * store and a replica that may lack keys (TTL-bounded, or loaded from a partial
 * snapshot), and refused values are saved. A format-1 file may claim to be
 * complete when it is not, so it is refused (a cold start), never trusted.
 */
const MAGIC = new TextEncoder().encode("KVEDGE-SNAPSHOT 2\n");
const OLDER_MAGIC = new TextEncoder().encode("KVEDGE-SNAPSHOT 1\n");
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
  /**
   * Whether the records may lack keys the bucket held at `lastRevision`
   * (taken by a lazy cache, or by a replica that overflowed its bounds, has a
   * `maxTtlMs`, or was itself loaded from a partial snapshot): a cache loaded
   * from it must not take a missing key for an absent one.
   */
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
  /**
   * When it stops being served (rule 6: `maxTtlMs`, the bucket TTL or the
   * value's own `Nats-TTL`), epoch ms; 0 or absent for never.
   */
  deadline?: number;
  /** The encoded value. */
  value: Uint8Array;
}

/**
 * Records pushed by a function instead of pulled from an iterable, so a big
 * store can be written without an object per record: `source(add)` calls
 * `add` once per record.
 */
export type SnapshotSource = (
  add: (
    key: string,
    rev: number,
    created: number,
    value: Uint8Array | string,
    deadline?: number,
  ) => void,
) => void;

/** A byte buffer that doubles when full. */
class Growing {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  at = 0;
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}

/**
 * Writes `records` to `path` atomically (a file: temporary file, then rename;
 * or a {@link SnapshotStorage}). The
 * records are encoded into one growing buffer (no buffer per record); a value
 * may be given as text, meaning its UTF-8 encoding.
 *
 * @example
 * ```ts ignore
 * await writeSnapshot("/tmp/users.snap", header, [{ key: "a", rev: 1, created: 0, value: new Uint8Array() }]);
 * ```
 */
export async function writeSnapshot(
  path: string | SnapshotStorage,
  header: Omit<SnapshotHeader, "count" | "sha256" | "savedAt">,
  records:
    | Iterable<Omit<SnapshotRecord, "value"> & { value: Uint8Array | string }>
    | SnapshotSource,
): Promise<SnapshotHeader> {
  const out = new Growing();
  let count = 0;
  const add = (
    key: string,
    rev: number,
    created: number,
    value: Uint8Array | string,
    deadline = 0,
  ) => {
    // Worst case of UTF-8 is 3 bytes per UTF-16 unit.
    const valueMax = typeof value === "string" ? value.length * 3 : value.byteLength;
    out.reserve(2 + key.length * 3 + 28 + valueMax);
    const { buf, view } = out;
    const keyAt = out.at + 2;
    const kl = encoder.encodeInto(key, buf.subarray(keyAt, keyAt + key.length * 3)).written;
    if (kl > 0xffff) throw new RangeError(`Cannot write snapshot: key too long (${kl} bytes)`);
    view.setUint16(out.at, kl);
    let o = keyAt + kl;
    view.setFloat64(o, rev);
    o += 8;
    view.setFloat64(o, created);
    o += 8;
    view.setFloat64(o, deadline);
    o += 8;
    let vl: number;
    if (typeof value === "string") {
      vl = encoder.encodeInto(value, buf.subarray(o + 4, o + 4 + valueMax)).written;
    } else {
      buf.set(value, o + 4);
      vl = value.byteLength;
    }
    view.setUint32(o, vl);
    out.at = o + 4 + vl;
    count++;
  };
  if (typeof records === "function") records(add);
  else for (const r of records) add(r.key, r.rev, r.created, r.value, r.deadline ?? 0);
  const body = out.buf.subarray(0, out.at);
  const full: SnapshotHeader = {
    ...header,
    count,
    savedAt: Date.now(),
    sha256: await sha256(body),
  };
  const head = encoder.encode(JSON.stringify(full));
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, head.length);
  await snapshotStorage(path).write([MAGIC, len, head, body]);
  return full;
}

/** Result of reading a snapshot: its header and records, or why it was refused. */
export type SnapshotRead =
  | { ok: true; header: SnapshotHeader; records: SnapshotRecord[] }
  | { ok: false; reason: string };

/** Result of {@link loadSnapshot}: its header, or why it was refused. */
export type SnapshotLoad =
  | { ok: true; header: SnapshotHeader }
  | { ok: false; reason: string };

/** Options of {@link loadSnapshot}. */
export interface LoadSnapshotOptions {
  /** The bucket the snapshot must be of. */
  bucket: string;
  /** The key filter the snapshot must be of. */
  filter: string;
  /** Refuses a verified header by returning why (e.g. another epoch); called before any record. */
  accept?: (header: SnapshotHeader) => string | undefined;
  /**
   * Called once per record, in file order, only after the whole file was
   * verified (checksum, structure, count). `value` is a view into the file's
   * buffer, valid during the call only: copy what you keep.
   */
  onRecord: (
    key: string,
    rev: number,
    created: number,
    value: Uint8Array,
    deadline: number,
  ) => void;
}

/**
 * Reads and verifies a snapshot for `options.bucket`/`options.filter`, then streams its
 * records to `onRecord` without a buffer per record. Never throws for a bad
 * file: a missing, corrupt, truncated or foreign file is refused with a
 * reason before any record is handed out.
 *
 * @example
 * ```ts ignore
 * const snap = await loadSnapshot("/tmp/users.snap", {
 *   bucket: "users",
 *   filter: ">",
 *   onRecord: (key, rev) => console.log(key, rev),
 * });
 * ```
 */
export async function loadSnapshot(
  path: string | SnapshotStorage,
  options: LoadSnapshotOptions,
): Promise<SnapshotLoad> {
  const { bucket, filter } = options;
  let data: Uint8Array;
  try {
    const read = await snapshotStorage(path).read();
    if (read === undefined) return { ok: false, reason: "no snapshot file" };
    data = read;
  } catch (err) {
    return { ok: false, reason: `cannot read snapshot: ${(err as Error).message}` };
  }
  if (data.length < MAGIC.length + 4 || !MAGIC.every((b, i) => data[i] === b)) {
    if (data.length >= OLDER_MAGIC.length && OLDER_MAGIC.every((b, i) => data[i] === b)) {
      return { ok: false, reason: "snapshot format 1 is not trusted (its partial flag may lie)" };
    }
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
  // Walk the records once to check their structure and count, so that a
  // refused file hands out nothing.
  const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let count = 0;
  for (let o = 0; o < body.length; count++) {
    if (o + 2 > body.length) return { ok: false, reason: "snapshot records are corrupt" };
    const at = o + 2 + bv.getUint16(o) + 24;
    if (at + 4 > body.length) return { ok: false, reason: "snapshot records are corrupt" };
    o = at + 4 + bv.getUint32(at);
    if (o > body.length) return { ok: false, reason: "snapshot records are corrupt" };
  }
  if (count !== header.count) {
    return { ok: false, reason: "snapshot record count mismatch" };
  }
  const refused = options.accept?.(header);
  if (refused !== undefined) return { ok: false, reason: refused };
  const { onRecord } = options;
  for (let o = 0; o < body.length;) {
    const kl = bv.getUint16(o);
    o += 2;
    const key = decoder.decode(body.subarray(o, o + kl));
    o += kl;
    const rev = bv.getFloat64(o);
    const created = bv.getFloat64(o + 8);
    const deadline = bv.getFloat64(o + 16);
    const vl = bv.getUint32(o + 24);
    o += 28;
    onRecord(key, rev, created, body.subarray(o, o + vl), deadline);
    o += vl;
  }
  return { ok: true, header };
}

/**
 * Reads and verifies a snapshot for `bucket`/`filter` into memory. Never
 * throws for a bad file: a missing, corrupt, truncated or foreign file is
 * refused with a reason. {@link loadSnapshot} does the same without an
 * object and a buffer per record.
 *
 * @example
 * ```ts ignore
 * const snap = await readSnapshot("/tmp/users.snap", "users", ">");
 * if (snap.ok) console.log(snap.header.lastRevision);
 * ```
 */
export async function readSnapshot(
  path: string | SnapshotStorage,
  bucket: string,
  filter: string,
): Promise<SnapshotRead> {
  const records: SnapshotRecord[] = [];
  const r = await loadSnapshot(path, {
    bucket,
    filter,
    onRecord: (key, rev, created, value, deadline) =>
      records.push({ key, rev, created, deadline, value: value.slice() }),
  });
  return r.ok ? { ok: true, header: r.header, records } : r;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

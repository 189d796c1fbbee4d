/**
 * Warm-start snapshots of a replica: values, revisions, deadlines and the
 * last applied revision in one checksummed file, written atomically, laid out
 * as columns so that loading it is reading it (no record-by-record parse).
 *
 * Layout (format 4, every number little-endian):
 *
 * ```text
 * "KVEDGE-SNAPSHOT 4\n"              18 bytes, the magic line
 * u32 headerLength, header           JSON, a SnapshotHeader
 * zero padding                       to a multiple of 8 bytes from the file's start
 * body:
 *   f64 revision[count]
 *   f64 created[count]               write time, epoch ms
 *   f64 deadline[count]              only if header.deadlines: when the value stops being
 *                                    served, wall-clock ms, 0 for never (absent: all 0)
 *   u32 keyOffset[count + 1]         into the key block; keyOffset[0] = 0
 *   u32 valueOffset[count + 1]       into the value block; valueOffset[0] = 0
 *   i32 keyTable[keyTableSize(count)] record per position or -1 (src/key_table.ts)
 *   zero padding                     to a multiple of 8 bytes
 *   key block                        the keys, UTF-8, back to back
 *   value block                      the encoded values, back to back
 * checksum of every byte before it   16 bytes (src/checksum.ts)
 * ```
 *
 * Records are in the store's recency order, most recently used first. The
 * checksum covers the header too (its revision, epoch and `partial` flag
 * decide what a warm start trusts): a corrupt or truncated file, or one whose
 * count and offsets do not add up, is refused whole (a cold start), never
 * half loaded. The body is aligned so that a reader takes
 * its columns and key table as typed-array views of the file's buffer,
 * without a copy or a hash per key. Formats 1 and 2 (records one after
 * another) and 3 (no key table, always a deadline column) are refused: the
 * first warm start after an upgrade is a cold one.
 *
 * @module
 */

import { type SnapshotStorage, snapshotStorage } from "./snapshot_file.ts";
import { checksum } from "./checksum.ts";
import { align8, SnapshotColumns } from "./snapshot_columns.ts";
import { keyTableSize, validTable } from "./key_table.ts";

/** Bytes of the checksum that ends the file. */
const SUM_BYTES = 16;

const MAGIC = new TextEncoder().encode("KVEDGE-SNAPSHOT 4\n");
/** The magic lines of the older formats, each with why it is refused. */
const OLDER: readonly [Uint8Array, string][] = [
  [
    new TextEncoder().encode("KVEDGE-SNAPSHOT 3\n"),
    "snapshot format 3 (no key table) is no longer read",
  ],
  [
    new TextEncoder().encode("KVEDGE-SNAPSHOT 2\n"),
    "snapshot format 2 (record by record) is no longer read",
  ],
  [
    new TextEncoder().encode("KVEDGE-SNAPSHOT 1\n"),
    "snapshot format 1 is not trusted (its partial flag may lie)",
  ],
];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Typed-array views of the file are in the host's byte order; the file is little-endian. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

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
  /** Whether the file has a deadline column (a record with a deadline); without, every deadline is 0. */
  deadlines: boolean;
  /**
   * Whether the records may lack keys the bucket held at `lastRevision`
   * (taken by a lazy cache, or by a replica that overflowed its bounds, has a
   * `maxTtlMs`, or was itself loaded from a partial snapshot): a cache loaded
   * from it must not take a missing key for an absent one.
   */
  partial: boolean;
  /** When it was written, epoch ms. */
  savedAt: number;
  /** Checksum of the file before its last 16 bytes (which hold it), hex; not in the JSON header. */
  checksum: string;
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
 * The body of a verified snapshot as columns: views of the file's buffer
 * (no copy). Record `r`'s key is `keys[keyOff[r]..keyOff[r + 1])`, its value
 * `values[valOff[r]..valOff[r + 1])`.
 */
export interface SnapshotImage {
  /** Records. */
  readonly count: number;
  /** Revision of each record. */
  readonly rev: Float64Array;
  /** Write time of each record, epoch ms. */
  readonly created: Float64Array;
  /** Deadline of each record, wall-clock ms, 0 for none; undefined when every one is 0. */
  readonly deadline: Float64Array | undefined;
  /** `count + 1` offsets into {@link keys}. */
  readonly keyOff: Uint32Array;
  /** `count + 1` offsets into {@link values}. */
  readonly valOff: Uint32Array;
  /** The keys, UTF-8. */
  readonly keys: Uint8Array;
  /** The encoded values. */
  readonly values: Uint8Array;
  /** The open-addressing table of the keys, a record index or -1 per position (`key_table.ts`). */
  readonly keyTable: Int32Array;
}

/**
 * Records pushed by a function instead of pulled from an iterable, so a big
 * store can be written without an object per record: `source(add)` calls
 * `add` once per record. A key or a value given as bytes is UTF-8 (a key) or
 * the encoded value, copied as they are; as text, its UTF-8 encoding.
 */
export type SnapshotSource = (
  add: (
    key: string | Uint8Array,
    rev: number,
    created: number,
    value: Uint8Array | string,
    deadline?: number,
  ) => void,
) => void;

/**
 * Writes `snapshot.records` under `snapshot.header` to `path` atomically (a
 * file: temporary file, then rename; or a {@link SnapshotStorage}), in the
 * column layout of this module's documentation. A value may be given as
 * text, meaning its UTF-8 encoding.
 *
 * @example
 * ```ts ignore
 * const records = [{ key: "a", rev: 1, created: 0, value: new Uint8Array() }];
 * await writeSnapshot("/tmp/users.snap", { header, records });
 * ```
 */
export async function writeSnapshot(
  path: string | SnapshotStorage,
  snapshot: {
    header: Omit<SnapshotHeader, "count" | "deadlines" | "checksum" | "savedAt">;
    records:
      | Iterable<Omit<SnapshotRecord, "value"> & { value: Uint8Array | string }>
      | SnapshotSource;
  },
): Promise<SnapshotHeader> {
  const { file, header: written } = encodeSnapshot(snapshot.header, snapshot.records);
  await snapshotStorage(path).write([file]);
  return written;
}

/**
 * The bytes of a snapshot of `records` ({@link writeSnapshot} without the
 * storage), and its full header.
 *
 * @example
 * ```ts ignore
 * const { file, header } = encodeSnapshot(head, (add) => add("k", 1, 0, "v"));
 * ```
 */
export function encodeSnapshot(
  header: Omit<SnapshotHeader, "count" | "deadlines" | "checksum" | "savedAt">,
  records:
    | Iterable<Omit<SnapshotRecord, "value"> & { value: Uint8Array | string }>
    | SnapshotSource,
): { file: Uint8Array; header: SnapshotHeader } {
  const cols = new SnapshotColumns();
  const add = cols.add.bind(cols);
  if (typeof records === "function") records(add);
  else for (const r of records) add(r.key, r.rev, r.created, r.value, r.deadline ?? 0);
  const written = { ...header, count: cols.count, deadlines: cols.deadlines, savedAt: Date.now() };
  const head = encoder.encode(JSON.stringify(written));
  const lead = new Uint8Array(align8(MAGIC.length + 4 + head.length));
  lead.set(MAGIC);
  new DataView(lead.buffer).setUint32(MAGIC.length, head.length, true);
  lead.set(head, MAGIC.length + 4);
  const file = cols.file(lead, SUM_BYTES);
  const end = file.length - SUM_BYTES;
  const sum = checksum(file.subarray(0, end));
  file.set(sum, end);
  return { file, header: { ...written, checksum: hex(sum) } };
}

/** Result of reading a snapshot: its header and records, or why it was refused. */
export type SnapshotRead =
  | { ok: true; header: SnapshotHeader; records: SnapshotRecord[] }
  | { ok: false; reason: string };

/** Result of {@link loadSnapshot}: its header and body, or why it was refused. */
export type SnapshotLoad =
  | { ok: true; header: SnapshotHeader; image: SnapshotImage }
  | { ok: false; reason: string };

/** Options of {@link loadSnapshot}. */
export interface LoadSnapshotOptions {
  /** The bucket the snapshot must be of. */
  bucket: string;
  /** The key filter the snapshot must be of. */
  filter: string;
  /** Refuses a verified header by returning why (e.g. another epoch). */
  accept?: (header: SnapshotHeader) => string | undefined;
}

/**
 * Reads and verifies a snapshot for `options.bucket`/`options.filter` and
 * hands out its body as columns ({@link SnapshotImage}, views of the file's
 * buffer). Never throws for a bad file: a missing, corrupt, truncated,
 * foreign or older-format file is refused with a reason.
 *
 * @example
 * ```ts ignore
 * const snap = await loadSnapshot("/tmp/users.snap", { bucket: "users", filter: ">" });
 * if (snap.ok) console.log(snap.image.count, snap.header.lastRevision);
 * ```
 */
export async function loadSnapshot(
  path: string | SnapshotStorage,
  options: LoadSnapshotOptions,
): Promise<SnapshotLoad> {
  let data: Uint8Array;
  try {
    const read = await snapshotStorage(path).read();
    if (read === undefined) return { ok: false, reason: "no snapshot file" };
    data = read;
  } catch (err) {
    return { ok: false, reason: `cannot read snapshot: ${(err as Error).message}` };
  }
  return decodeSnapshot(data, options);
}

/**
 * Verifies the snapshot `data` ({@link loadSnapshot} without the storage)
 * and hands out its columns, views of `data`'s buffer (copied first only if
 * `data` does not start at a multiple of 8 bytes). Never throws for bad bytes.
 *
 * @example
 * ```ts ignore
 * const snap = decodeSnapshot(bytes, { bucket: "users", filter: ">" });
 * ```
 */
export function decodeSnapshot(data: Uint8Array, options: LoadSnapshotOptions): SnapshotLoad {
  const older = olderFormat(data);
  if (older !== undefined) return { ok: false, reason: older };
  // Views need an 8-aligned body; a storage may hand out any slice.
  if (data.byteOffset % 8 !== 0) data = data.slice();
  const end = data.length - SUM_BYTES;
  const sum = checksum(data.subarray(0, end));
  if (!sum.every((b, i) => data[end + i] === b)) {
    return { ok: false, reason: "snapshot checksum mismatch" };
  }
  const head = readHeader(data.subarray(0, end), options);
  if (typeof head === "string") return { ok: false, reason: head };
  const { header, bodyAt } = head;
  const body = data.subarray(bodyAt, end);
  if (!LITTLE_ENDIAN) return { ok: false, reason: "snapshot format 4 needs a little-endian host" };
  const image = columns(body, { count: header.count, deadlines: header.deadlines === true });
  if (image === undefined) return { ok: false, reason: "snapshot records are corrupt" };
  const refused = options.accept?.(header);
  if (refused !== undefined) return { ok: false, reason: refused };
  return { ok: true, header: { ...header, checksum: hex(sum) }, image };
}

/** Why `data` is refused before its checksum: not this format, or too short to hold one. */
function olderFormat(data: Uint8Array): string | undefined {
  const starts = (magic: Uint8Array) =>
    data.length >= magic.length && magic.every((b, i) => data[i] === b);
  if (starts(MAGIC)) {
    return data.length < MAGIC.length + 4 + SUM_BYTES ? "snapshot truncated" : undefined;
  }
  for (const [magic, why] of OLDER) if (starts(magic)) return why;
  return "not a kvedge snapshot (bad magic)";
}

/** The header of checked `data` (without its checksum) and where its body starts, or why it is refused. */
function readHeader(
  data: Uint8Array,
  { bucket, filter }: LoadSnapshotOptions,
): { header: SnapshotHeader; bodyAt: number } | string {
  const headLen = new DataView(data.buffer, data.byteOffset).getUint32(MAGIC.length, true);
  const headEnd = MAGIC.length + 4 + headLen;
  if (headEnd > data.length) return "snapshot header is corrupt";
  let header: SnapshotHeader;
  try {
    header = JSON.parse(decoder.decode(data.subarray(MAGIC.length + 4, headEnd)));
  } catch {
    return "snapshot header is corrupt";
  }
  if (header.bucket !== bucket || header.filter !== filter) {
    return `snapshot is of bucket "${header.bucket}" filter "${header.filter}", not "${bucket}" "${filter}"`;
  }
  if (!Number.isSafeInteger(header.count) || header.count < 0) return "snapshot header is corrupt";
  return { header, bodyAt: align8(headEnd) };
}

/**
 * The columns of a verified `body` of `count` records (with a deadline
 * column if `deadlines`), or undefined when its length, offsets or key table
 * do not add up (so a refused file hands out nothing).
 */
function columns(
  body: Uint8Array,
  { count, deadlines }: { count: number; deadlines: boolean },
): SnapshotImage | undefined {
  const nums = deadlines ? 3 : 2;
  const tableSize = keyTableSize(count);
  const offsAt = count * 8 * nums;
  const tableAt = offsAt + (count + 1) * 8;
  const fixed = tableAt + tableSize * 4;
  if (body.byteLength < align8(fixed)) return undefined;
  const { buffer, byteOffset } = body;
  const f64 = (k: number) => new Float64Array(buffer, byteOffset + k * count * 8, count);
  const keyOff = new Uint32Array(buffer, byteOffset + offsAt, count + 1);
  const valOff = new Uint32Array(buffer, byteOffset + offsAt + (count + 1) * 4, count + 1);
  if (!ascending(keyOff) || !ascending(valOff)) return undefined;
  const blocksAt = align8(fixed);
  const keyBytes = keyOff[count]!;
  if (blocksAt + keyBytes + valOff[count]! !== body.byteLength) return undefined;
  const keyTable = new Int32Array(buffer, byteOffset + tableAt, tableSize);
  if (!validTable(keyTable, count)) return undefined;
  return {
    count,
    rev: f64(0),
    created: f64(1),
    deadline: deadlines ? f64(2) : undefined,
    keyOff,
    valOff,
    keys: body.subarray(blocksAt, blocksAt + keyBytes),
    values: body.subarray(blocksAt + keyBytes),
    keyTable,
  };
}

/** Whether `offsets` starts at 0 and never goes down. */
function ascending(offsets: Uint32Array): boolean {
  if (offsets[0] !== 0) return false;
  for (let i = 1; i < offsets.length; i++) if (offsets[i]! < offsets[i - 1]!) return false;
  return true;
}

/**
 * Reads and verifies a snapshot for `bucket`/`filter` into records (one
 * object and one copy of the value each): for tools and tests; a warm start
 * takes the columns of {@link loadSnapshot}. Never throws for a bad file.
 *
 * @example
 * ```ts ignore
 * const snap = await readSnapshot("/tmp/users.snap", { bucket: "users", filter: ">" });
 * if (snap.ok) console.log(snap.header.lastRevision);
 * ```
 */
export async function readSnapshot(
  path: string | SnapshotStorage,
  expect: { bucket: string; filter: string },
): Promise<SnapshotRead> {
  const r = await loadSnapshot(path, expect);
  if (!r.ok) return r;
  const { image: m } = r;
  const records: SnapshotRecord[] = [];
  for (let i = 0; i < m.count; i++) {
    records.push({
      key: decoder.decode(m.keys.subarray(m.keyOff[i], m.keyOff[i + 1])),
      rev: m.rev[i]!,
      created: m.created[i]!,
      deadline: m.deadline?.[i] ?? 0,
      value: m.values.slice(m.valOff[i], m.valOff[i + 1]),
    });
  }
  return { ok: true, header: r.header, records };
}

function hex(d: Uint8Array): string {
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

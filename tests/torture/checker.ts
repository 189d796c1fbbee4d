/**
 * The judge of the fault-schedule checker: every read a schedule made,
 * checked against KV's own history (read back from the stream, one history
 * per incarnation of the bucket), never against what the writers believed.
 * Rules (docs/guarantees.md#the-fault-schedule-checker):
 *
 * - values: a value served is one KV held for that key, at the revision the
 *   cache says (a loader's value has revision 0);
 * - rules 1 and 4: one cache instance never returns, for a key, a revision
 *   (or bucket incarnation) older than one it returned before;
 * - rule 2: once it answered "absent" after returning revision r, it never
 *   returns a revision below the first removal after r; and it answers
 *   "absent" after r only if KV removed the key after r;
 * - rule 7: a read that finds the cache disconnected before and after serves
 *   a resident entry marked stale; a read or write never hangs (the runner
 *   reports hangs);
 * - synced ⇒ current: a read made while the cache says `synced`, with no
 *   fault active, serves at least what KV held {@linkcode LAG_BOUND_MS}
 *   before (a loader value only for a key KV held nothing for);
 * - rule 8: a read with a bookmark (`atLeast`: the newest write acknowledged
 *   to anyone when it started) answers what KV held for the key at that
 *   revision or something newer — or fails with a typed error, or, with
 *   `allowStale`, answers older marked `stale` and `belowBookmark`.
 *
 * @module
 */
import type { Revision } from "./history.ts";

/**
 * How long after a recreation (or a fault healed since) a cache may take a
 * bookmark of the new bucket for reached, ms: its `reconcileMs` (2 s) and
 * heartbeat (1 s) with room for a loaded 2-core machine.
 */
export const RECREATE_NOTICE_MS = 8_000;

/** How far behind KV a `synced` cache may be, ms (generous: a loaded 2-core machine). */
export const LAG_BOUND_MS = 8_000;

/** What a read returned. */
export type ReadResult =
  | {
    kind: "value";
    id?: string;
    revision?: number;
    source?: string;
    stale?: boolean;
    belowBookmark?: boolean;
  }
  | { kind: "absent" }
  | { kind: "error"; name: string; code?: string; message: string }
  | { kind: "hang" };

/** One read of the cache. */
export interface ReadObservation {
  /** Index of the cache instance (a reopen makes a new one). */
  inst: number;
  key: string;
  /** getAt: `getEntry` with `atLeast: bookmark`. */
  how: "get" | "getEntry" | "peek" | "getAt";
  step: number;
  start: number;
  end: number;
  /** Bucket incarnation when the read started. */
  epoch: number;
  /** Status before and after: connected and, regional, whether the hub was reachable. */
  before: { state: string; connected: boolean; hubReachable?: boolean };
  after: { state: string; connected: boolean; hubReachable?: boolean };
  /** An outage fault was active at the start or the end. */
  outage: boolean;
  /** Time of the last fault, heal, purge or recreate before the read. */
  lastDisturbance: number;
  /** getAt: the revision asked for (the newest acknowledged write), 0 for none. */
  bookmark?: number;
  /** getAt: the read allowed a stale answer below the bookmark. */
  allowStale?: boolean;
  /** getAt: the bucket incarnation when the read ended. */
  epochAfter?: number;
  result: ReadResult;
}

/** One change a `changes()` reader got. */
export interface ChangeObservation {
  inst: number;
  /** "fast" reads all the time; "slow" is paused by schedules, with a small buffer. */
  reader: "fast" | "slow";
  /** Its index in that reader's sequence. */
  n: number;
  key: string;
  operation: string;
  revision: number;
  /** The value's id, for a PUT whose value has one. */
  id?: string;
  /** The bucket incarnation when it was received. */
  epoch: number;
  /** The cache may repeat a change after a re-read: a replica whose store cannot hold every key. */
  mayRepeat: boolean;
  /** The cache's `status().resyncs` when it was received. */
  resyncs?: number;
  /** Its `status().lastResyncReason` then. */
  lastResync?: string;
}

/** How a `changes()` reader ended: at close (no error) or with an error. */
export interface ReaderEnd {
  inst: number;
  reader: "fast" | "slow";
  count: number;
  error?: string;
}

/** A value a loader gave. */
export interface LoaderCall {
  key: string;
  id: string;
  at: number;
  /** NATS was unreachable for the cache (an outage active, or the cache said disconnected). */
  offline: boolean;
}

/** Where a value id was written. */
export interface Written {
  key: string;
  epoch: number;
  revision?: number;
  /** Written with a per-key TTL: it may have left the stream before it was read back. */
  ttl: boolean;
}

/** A stream purge: every key removed after `lastSeq`, at `at`. */
export interface StreamPurge {
  epoch: number;
  lastSeq: number;
  at: number;
}

/** Everything the checker judges. */
export interface Evidence {
  /** KV's history per bucket incarnation. */
  histories: Revision[][];
  purges: StreamPurge[];
  /** Values written (acknowledged or not), by id; for TTL writes that may be gone. */
  written: Map<string, Written>;
  /**
   * Values the schema refuses, written raw (they carry no id): a reader may
   * get one that a later purge of its key rolled out of the stream.
   */
  badPuts: Omit<Written, "ttl">[];
  /**
   * Purges of a key made while the server could not be asked for the
   * history first: what they rolled up of the key is unknown.
   */
  blindPurges: { key: string; epoch: number }[];
  reads: ReadObservation[];
  /** What `changes()` readers got (optional: runs without readers). */
  changes?: ChangeObservation[];
  readerEnds?: ReaderEnd[];
  loaderCalls: Map<string, LoaderCall>;
  schema: boolean;
}

/** One broken rule. */
export interface Violation {
  rule: string;
  message: string;
  step?: number;
  /** A `changes()` violation: the change it is about. */
  change?: ChangeObservation;
  /**
   * Set when all it says is that a value KV holds for the key came at another
   * revision (served, told or held): the symptom of R3 replicas out of step
   * on nats-server 2.9 (tests/torture/replica_defect.ts).
   */
  shifted?: Shift[];
}

/** A value KV holds for `key` at `kvRevision`, seen at `revision`. */
export interface Shift {
  key: string;
  id: string;
  revision: number;
  kvRevision: number;
}

type Pos = { epoch: number; rev: number };
const before = (a: Pos, b: Pos) => a.epoch < b.epoch || (a.epoch === b.epoch && a.rev < b.rev);

/** Judges `ev`; returns every violation found. */
export function judge(ev: Evidence): Violation[] {
  const out: Violation[] = judgeChanges(ev);
  const byId = new Map<string, { key: string; epoch: number; revision: number }>();
  ev.histories.forEach((h, epoch) => {
    for (const r of h) if (r.id) byId.set(r.id, { key: r.key, epoch, revision: r.revision });
  });
  const last = new Map<string, Pos>(); // inst/key → last returned
  const floor = new Map<string, Pos>(); // inst/key → first removal after an absent answer
  const reads = [...ev.reads].sort((a, b) => a.start - b.start);
  for (const r of reads) {
    const where = `step ${r.step}, ${r.how}(${r.key}) on cache #${r.inst}`;
    const res = r.result;
    const slot = `${r.inst}/${r.key}`;
    const v = (rule: string, message: string) =>
      out.push({ rule, message: `${where}: ${message}`, step: r.step });
    if (res.kind === "hang") {
      v("rule 7", `did not answer within its deadline${r.outage ? " during an outage" : ""}`);
      continue;
    }
    if (res.kind === "error") {
      const ok = ["UnavailableError", "LoaderError", "DecodeError", "ClosedError"];
      if (r.how === "getAt") ok.push("BookmarkError");
      if (!ok.includes(res.name)) v("typed errors", `failed with ${res.name}: ${res.message}`);
      if (res.name === "DecodeError" && !ev.schema) v("values", `DecodeError: ${res.message}`);
      continue;
    }
    if (res.kind === "absent") {
      if (r.how === "peek") continue; // not resident: says nothing
      const prev = last.get(slot);
      if (prev) {
        const removal = removalAfter(ev, r.key, prev);
        if (!removal) {
          v(
            "rule 2",
            `answered absent after returning revision ${prev.rev} (incarnation ${prev.epoch}), but KV never removed the key after it`,
          );
        } else {
          const f = floor.get(slot);
          if (!f || before(f, removal)) floor.set(slot, removal);
        }
      }
      checkSynced(ev, r, undefined, v);
      checkBookmark(ev, r, undefined, v);
      continue;
    }
    // A value.
    if (res.id === undefined) {
      v("values", "served a value without an id: one the schema should have refused");
      continue;
    }
    if (res.id.startsWith("L")) {
      if (res.revision !== undefined && res.revision !== 0) {
        v("values", `a loader value with revision ${res.revision}`);
      }
      checkSynced(ev, r, { epoch: r.epoch, rev: 0 }, v);
      checkBookmark(ev, r, { epoch: r.epoch, rev: 0 }, v);
      continue;
    }
    const w = byId.get(res.id);
    const known = ev.written.get(res.id);
    let pos: Pos | undefined;
    if (w) {
      if (w.key !== r.key) v("values", `served ${res.id}, a value of key ${w.key}`);
      if (res.revision !== undefined && res.revision !== w.revision) {
        out.push({
          rule: "values",
          message:
            `${where}: served ${res.id} as revision ${res.revision}; KV holds it at ${w.revision}`,
          step: r.step,
          ...(w.key === r.key
            ? {
              shifted: [{
                key: r.key,
                id: res.id,
                revision: res.revision,
                kvRevision: w.revision,
              }],
            }
            : {}),
        });
      }
      pos = { epoch: w.epoch, rev: w.revision };
    } else if (known && known.key === r.key) {
      // Written to this key but not in the stream read back: a TTL write gone
      // from it, or one a later purge of the key rolled up — acknowledged (its
      // revision is checked below) or not (a write that timed out against a
      // paused server can still be stored once it runs again).
      if (known.revision !== undefined) pos = { epoch: known.epoch, rev: known.revision };
    } else {
      v("values", `served ${res.id}, which KV never held for this key`);
      continue;
    }
    const offline = (s: ReadObservation["before"]) => !s.connected || s.hubReachable === false;
    if (r.how === "getEntry" && res.stale === false && offline(r.before) && offline(r.after)) {
      v("rule 7", `served a resident entry as fresh (source ${res.source}) while disconnected`);
    }
    if (pos) {
      const prev = last.get(slot);
      if (prev && before(pos, prev)) {
        v(
          "rule 4",
          `returned revision ${pos.rev} (incarnation ${pos.epoch}) after revision ${prev.rev} (incarnation ${prev.epoch})`,
        );
      }
      const f = floor.get(slot);
      if (f && before(pos, f)) {
        v(
          "rule 2",
          `returned revision ${pos.rev} after answering absent past the removal at revision ${f.rev}: resurrected`,
        );
      }
      if (!prev || before(prev, pos)) last.set(slot, pos);
      if (r.how !== "peek") checkSynced(ev, r, pos, v);
      checkBookmark(ev, r, pos, v);
    }
  }
  return out;
}

/** The first removal of `key` after `p` in KV (a delete, a purge, a stream purge, a recreate). */
function removalAfter(ev: Evidence, key: string, p: Pos): Pos | undefined {
  const h = ev.histories[p.epoch] ?? [];
  const del = h.find((x) => x.key === key && x.revision > p.rev && x.operation !== "PUT");
  const purge = ev.purges.find((x) => x.epoch === p.epoch && x.lastSeq >= p.rev);
  const cands: Pos[] = [];
  if (del) cands.push({ epoch: p.epoch, rev: del.revision });
  if (purge) cands.push({ epoch: p.epoch, rev: purge.lastSeq + 0.5 });
  if (ev.histories.length > p.epoch + 1) cands.push({ epoch: p.epoch + 1, rev: 0 });
  // A TTL value expires: removed right after it.
  const ttl = [...ev.written.values()].some((w) =>
    w.key === key && w.ttl && w.epoch === p.epoch && w.revision === p.rev
  );
  if (ttl) cands.push({ epoch: p.epoch, rev: p.rev + 0.5 });
  // A purge of the key whose history could not be read first may have rolled
  // up a removal anywhere between p and it.
  const blind = ev.blindPurges.some((b) => b.key === key && b.epoch === p.epoch) &&
    h.some((x) => x.key === key && x.revision > p.rev && x.operation === "PURGE");
  if (blind) cands.push({ epoch: p.epoch, rev: p.rev + 0.5 });
  // A later TTL write of the key expired (its value and marker may both be gone).
  for (const w of ev.written.values()) {
    if (w.key === key && w.ttl && w.epoch === p.epoch && (w.revision ?? Infinity) > p.rev) {
      cands.push({ epoch: p.epoch, rev: (w.revision ?? p.rev) + 0.5 });
    }
  }
  cands.sort((a, b) => (before(a, b) ? -1 : 1));
  return cands[0];
}

/**
 * synced ⇒ current: a read with the cache synced before and after, no outage
 * and no disturbance for {@linkcode LAG_BOUND_MS}, serves at least KV's state
 * of `LAG_BOUND_MS` before it started.
 */
function checkSynced(
  ev: Evidence,
  r: ReadObservation,
  got: Pos | undefined, // undefined: absent; rev 0: a loader value
  v: (rule: string, message: string) => void,
) {
  if (r.outage || r.before.state !== "synced" || r.after.state !== "synced") return;
  if (r.before.hubReachable === false || r.after.hubReachable === false) return;
  const horizon = r.start - LAG_BOUND_MS;
  if (r.lastDisturbance > horizon) return;
  if (got !== undefined && got.rev > 0 && got.epoch < r.epoch) {
    v(
      "synced ⇒ current",
      `served revision ${got.rev} of the bucket's incarnation ${got.epoch} while synced, ${LAG_BOUND_MS} ms after it was recreated`,
    );
    return;
  }
  const h = ev.histories[r.epoch] ?? [];
  let held: Revision | undefined;
  for (const x of h) if (x.key === r.key && x.at <= horizon) held = x;
  const purged = ev.purges.some((p) =>
    p.epoch === r.epoch && p.at <= horizon && (!held || p.lastSeq >= held.revision)
  );
  if (!held || purged) return; // KV held nothing for it then: anything later is possible
  if ([...ev.written.values()].some((w) => w.key === r.key && w.ttl && w.epoch === r.epoch)) {
    return; // expired TTL values and markers leave the stream: its history is incomplete
  }
  const removalSince =
    h.some((x) => x.key === r.key && x.revision > held!.revision && x.operation !== "PUT") ||
    ev.purges.some((p) => p.epoch === r.epoch && p.lastSeq >= held!.revision);
  const what = held.operation === "PUT"
    ? `revision ${held.revision}`
    : `a ${held.operation} at ${held.revision}`;
  if (got === undefined) {
    if (held.operation === "PUT" && !removalSince) {
      v(
        "synced ⇒ current",
        `answered absent while synced; KV held ${what} ${LAG_BOUND_MS} ms before`,
      );
    }
    return;
  }
  if (got.rev === 0) {
    v(
      "loader after NATS",
      `served a loader value while synced; KV held ${what} for it ${LAG_BOUND_MS} ms before`,
    );
    return;
  }
  if (got.epoch === r.epoch && got.rev < held.revision) {
    v(
      "synced ⇒ current",
      `served revision ${got.rev} while synced; KV held ${what} ${LAG_BOUND_MS} ms before`,
    );
  }
}

/**
 * Rule 8: a read with bookmark B answers what KV held for the key at B (its
 * newest PUT at or below B, unless removed after it up to B) or something
 * newer (a later write, or absent after a later removal it could have seen);
 * a loader value only where KV held nothing at B. With `allowStale`, an older
 * value is allowed when marked `stale` and `belowBookmark`; without it, never
 * marked. Not judged: keys with per-key TTL writes (their history leaves the
 * stream), reads across a recreate, and values of an earlier incarnation (a
 * revision names no incarnation; rule 4 judges those). Where a purge of the
 * key rolled up its history past the newest PUT known, only values older
 * than that PUT are judged. Nor are reads within 8 s of a stream purge
 * (no event tells an edge of it before its next reconciliation).
 */
function checkBookmark(
  ev: Evidence,
  r: ReadObservation,
  got: Pos | undefined, // undefined: absent; rev 0: a loader value
  v: (rule: string, message: string) => void,
) {
  const b = r.bookmark;
  if (r.how !== "getAt" || b === undefined || b === 0 || r.epochAfter !== r.epoch) return;
  const res = r.result;
  const marked = res.kind === "value" && res.belowBookmark === true;
  if (marked && !r.allowStale) {
    v("rule 8", `marked belowBookmark without allowStale (bookmark ${b})`);
  }
  if (marked && res.kind === "value" && res.stale !== true) {
    v("rule 8", `marked belowBookmark but not stale (bookmark ${b})`);
  }
  if (marked) return;
  const e = r.epoch;
  if (got !== undefined && got.epoch !== e) return;
  // A revision names no incarnation: an edge that has not noticed the
  // recreation yet may take the new bucket's bookmark for reached (a
  // documented limit: it notices within reconcileMs or a heartbeat, once
  // connected).
  if (e > 0 && (r.outage || r.start < r.lastDisturbance + RECREATE_NOTICE_MS)) return;
  // Nor does a stream purge send any event: an edge that has not reconciled
  // since may take a bookmark past it for reached while holding a purged key
  // (the same documented limit; it notices within reconcileMs).
  if (
    ev.purges.some((p) => p.epoch === e && p.at <= r.end && r.start < p.at + RECREATE_NOTICE_MS)
  ) {
    return;
  }
  if ([...ev.written.values()].some((w) => w.key === r.key && w.ttl && w.epoch === e)) return;
  const h = (ev.histories[e] ?? []).filter((x) => x.key === r.key);
  // The newest PUT at or below b: from the stream, or an acknowledged write a
  // later purge of the key rolled up.
  let best = 0;
  for (const x of h) {
    if (x.operation === "PUT" && x.revision <= b) best = Math.max(best, x.revision);
  }
  for (const w of ev.written.values()) {
    if (w.key === r.key && w.epoch === e && w.revision !== undefined && w.revision <= b) {
      best = Math.max(best, w.revision);
    }
  }
  // A purge of the key past `best` may have rolled up a removal the stream no longer shows.
  const uncertain = h.some((x) => x.operation === "PURGE" && x.revision > best);
  const heldAtB = best > 0 &&
    !h.some((x) => x.operation !== "PUT" && x.revision > best && x.revision <= b) &&
    !ev.purges.some((p) => p.epoch === e && p.lastSeq >= best && p.lastSeq < b);
  // A removal after B, done before the read ended, explains an absent answer.
  const removedLater = h.some((x) => x.operation !== "PUT" && x.revision > b && x.at <= r.end) ||
    ev.purges.some((p) => p.epoch === e && p.lastSeq >= b && p.at <= r.end);
  const older = (how: string) =>
    v(
      "rule 8",
      `${how} with bookmark ${b}, when KV held ${
        heldAtB ? `revision ${best}` : "nothing"
      } for the key at it${r.allowStale ? " (allowStale, but not marked belowBookmark)" : ""}`,
    );
  if (got === undefined || got.rev === 0) {
    if (!uncertain && heldAtB && !removedLater) {
      older(got === undefined ? "answered absent" : "served a loader value");
    }
    return;
  }
  if (got.rev > b) return; // written after the bookmark
  if (got.rev < best) older(`served revision ${got.rev}`);
  else if (!uncertain && !heldAtB) older(`served revision ${got.rev}, removed before the bookmark`);
}

/**
 * `changes()`: every change is one KV stored (its key, operation and value
 * at that revision, in some incarnation of the bucket); one reader never
 * gets an older revision of a key after a newer one within an incarnation
 * (a re-read after a resync or a WAN heal may repeat a key's revision — only
 * in a replica whose store cannot hold every key — and bring one the edge
 * lacked after higher ones of other keys); a reader ends
 * only at close() or with an `OverflowError` (the slow one), and what a slow
 * reader got is exactly the start of what the fast reader of the same cache
 * got: a paused reader may fail, never skip.
 */
function judgeChanges(ev: Evidence): Violation[] {
  const out: Violation[] = [];
  const changes = ev.changes ?? [];
  const ttlKeys = new Set([...ev.written.values()].filter((w) => w.ttl).map((w) => w.key));
  const byRev = ev.histories.map((h) => new Map(h.map((x) => [x.revision, x])));
  const byId = new Map(ev.histories.flat().flatMap((x) => x.id ? [[x.id, x] as const] : []));
  const seqs = new Map<string, ChangeObservation[]>();
  for (const c of changes) {
    const k = `${c.inst}/${c.reader}`;
    if (!seqs.has(k)) seqs.set(k, []);
    seqs.get(k)!.push(c);
  }
  for (const [k, seq] of seqs) {
    seq.sort((a, b) => a.n - b.n);
    const prevOfKey = new Map<
      string,
      { epoch: number; rev: number; id?: string; resyncs?: number }
    >();
    for (const c of seq) {
      const where = `changes() reader ${k}, change ${c.n} (${c.operation} ${c.key}@${c.revision})`;
      // The incarnations that stored exactly this.
      const epochs = byRev.flatMap((m, e) => {
        const x = m.get(c.revision);
        return x && x.key === c.key && x.operation === c.operation &&
            (x.operation !== "PUT" || x.id === c.id)
          ? [e]
          : [];
      });
      const written = c.id !== undefined ? ev.written.get(c.id) : undefined;
      if (epochs.length === 0 && !ttlKeys.has(c.key)) {
        // A value written to this key that a later purge of the key rolled out
        // of the stream (acknowledged at this revision, or never acknowledged).
        const at = (w: { key: string; revision?: number }) =>
          w.key === c.key && (w.revision === undefined || w.revision === c.revision);
        const ours = written ? at(written) : c.id === undefined && ev.badPuts.some(at);
        if (!ours && c.operation === "PUT") {
          // The value KV stored for the key at another revision?
          const heldAt = c.id !== undefined ? byId.get(c.id) : undefined;
          out.push({
            rule: "changes()",
            message: `${where}: KV never stored this${
              heldAt?.key === c.key ? ` (KV holds it at ${heldAt.revision})` : ""
            }`,
            change: c,
            ...(heldAt?.key === c.key && c.id !== undefined
              ? {
                shifted: [{
                  key: c.key,
                  id: c.id,
                  revision: c.revision,
                  kvRevision: heldAt.revision,
                }],
              }
              : {}),
          });
        }
      }
      const epoch = epochs.includes(c.epoch) ? c.epoch : epochs.at(-1) ?? written?.epoch;
      if (epoch === undefined) continue;
      const before = prevOfKey.get(c.key);
      if (before && before.epoch === epoch && c.revision < before.rev) {
        // The same value at two revisions: told first where it was not stored.
        const same = c.id !== undefined && before.id === c.id;
        out.push({
          rule: "changes()",
          message: `${where}: after ${c.key}@${before.rev} of the same incarnation: older${
            same ? " (the same value)" : ""
          } (resyncs ${before.resyncs ?? "?"} → ${c.resyncs ?? "?"}, last: ${
            c.lastResync ?? "none"
          })`,
          ...(same
            ? {
              shifted: [{ key: c.key, id: c.id!, revision: before.rev, kvRevision: c.revision }],
            }
            : {}),
        });
      } else if (before && before.epoch === epoch && c.revision === before.rev && !c.mayRepeat) {
        out.push({
          rule: "changes()",
          message: `${where}: repeated, by a cache whose store holds every key (resyncs ${
            before.resyncs ?? "?"
          } → ${c.resyncs ?? "?"}, last: ${c.lastResync ?? "none"})`,
        });
      }
      prevOfKey.set(c.key, { epoch, rev: c.revision, id: c.id, resyncs: c.resyncs });
    }
  }
  for (const end of ev.readerEnds ?? []) {
    const k = `${end.inst}/${end.reader}`;
    if (end.error !== undefined && !(end.reader === "slow" && end.error === "OverflowError")) {
      out.push({ rule: "changes()", message: `changes() reader ${k} failed with ${end.error}` });
    }
    if (end.reader !== "slow") continue;
    const slow = seqs.get(k) ?? [];
    const fast = seqs.get(`${end.inst}/fast`) ?? [];
    const at = slow.findIndex((c, i) =>
      fast[i] === undefined || fast[i]!.revision !== c.revision || fast[i]!.key !== c.key
    );
    if (at >= 0) {
      const f = fast[at];
      out.push({
        rule: "changes()",
        message: `the slow changes() reader of cache #${end.inst} got ${slow[at]!.key}@${
          slow[at]!.revision
        } as change ${at}, the fast one ${f ? `${f.key}@${f.revision}` : "nothing"}: skipped`,
      });
    } else if (end.error === undefined && slow.length < fast.length) {
      out.push({
        rule: "changes()",
        message:
          `the slow changes() reader of cache #${end.inst} ended at close with ${slow.length} changes of the fast one's ${fast.length}, without an error`,
      });
    }
  }
  return out;
}

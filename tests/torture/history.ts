/**
 * KV's own history, read back from the bucket's stream (never from what the
 * writers believe): every message the stream holds, in sequence order, and
 * the latest message per key (`last_by_subj`, answered by the stream leader).
 * The checker judges every read against these.
 *
 * @module
 */
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { kvStreamName, kvSubject, kvSubjectPrefix, operationOf } from "../../src/kv_layout.ts";
import type { Operation } from "../../src/types.ts";

/** One stored message of a bucket. */
export interface Revision {
  key: string;
  revision: number;
  operation: Operation;
  /** The value's id (`w` of the JSON value) for a PUT whose value has one. */
  id?: string;
  /** The value decoded, for a PUT. */
  value?: unknown;
  /** When the stream stored it, epoch ms. */
  at: number;
}

async function manager(nc: NatsConnection): Promise<JetStreamManager> {
  return await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
}

function decode(data: Uint8Array): { value: unknown; id?: string } {
  try {
    const value = JSON.parse(new TextDecoder().decode(data));
    const id = typeof value === "object" && value !== null && typeof value.w === "string"
      ? value.w
      : undefined;
    return id === undefined ? { value } : { value, id };
  } catch {
    return { value: undefined };
  }
}

/**
 * Every message the stream of `bucket` holds now, read one by one by
 * sequence through the leader (`STREAM.MSG.GET`): small buckets only.
 */
export async function readHistory(nc: NatsConnection, bucket: string): Promise<Revision[]> {
  const jsm = await manager(nc);
  const stream = kvStreamName(bucket);
  const info = await jsm.streams.info(stream);
  const out: Revision[] = [];
  const prefix = kvSubjectPrefix(bucket);
  // An empty stream says first_seq 0 (a new one) or last_seq + 1 (purged): sequences start at 1.
  for (let seq = Math.max(1, info.state.first_seq); seq <= info.state.last_seq; seq++) {
    let m;
    try {
      m = await jsm.streams.getMessage(stream, { seq });
    } catch (err) {
      if (/no message found|not found/i.test(String(err))) continue; // removed (history, TTL)
      throw err;
    }
    if (!m) continue;
    if (!m.subject.startsWith(prefix)) continue;
    const operation = operationOf(m.header);
    const r: Revision = {
      key: m.subject.slice(prefix.length),
      revision: m.seq,
      operation,
      at: m.time.getTime(),
    };
    if (operation === "PUT") Object.assign(r, decode(m.data));
    out.push(r);
  }
  return out;
}

/** The stream's last sequence and creation time (its epoch), or `undefined` without a stream. */
export async function streamState(
  nc: NatsConnection,
  bucket: string,
): Promise<
  { lastSeq: number; firstSeq: number; messages: number; created: string } | undefined
> {
  const jsm = await manager(nc);
  try {
    const info = await jsm.streams.info(kvStreamName(bucket));
    return {
      lastSeq: info.state.last_seq,
      firstSeq: info.state.first_seq,
      messages: info.state.messages,
      created: info.created,
    };
  } catch {
    return undefined;
  }
}

/**
 * The latest message of every key in `keys` (the stream's last-per-subject),
 * `undefined` for a key the stream holds nothing for.
 */
export async function latest(
  nc: NatsConnection,
  bucket: string,
  keys: Iterable<string>,
): Promise<Map<string, Revision | undefined>> {
  const jsm = await manager(nc);
  const out = new Map<string, Revision | undefined>();
  for (const key of keys) {
    try {
      const m = await jsm.streams.getMessage(kvStreamName(bucket), {
        last_by_subj: kvSubject(bucket, key),
      });
      if (!m) {
        out.set(key, undefined);
        continue;
      }
      const operation = operationOf(m.header);
      const r: Revision = { key, revision: m.seq, operation, at: m.time.getTime() };
      if (operation === "PUT") Object.assign(r, decode(m.data));
      out.set(key, r);
    } catch (err) {
      if (/no message found|not found/i.test(String(err))) out.set(key, undefined);
      else throw err;
    }
  }
  return out;
}

/** A mirror's state as its server reports it: last sequence, ms since it heard its origin, lag. */
export async function mirrorState(
  nc: NatsConnection,
  bucket: string,
): Promise<{ lastSeq: number; activeMs: number; lag: number } | undefined> {
  const jsm = await manager(nc);
  try {
    const info = await jsm.streams.info(kvStreamName(bucket));
    const m = info.mirror;
    if (!m) return undefined;
    return {
      lastSeq: info.state.last_seq,
      activeMs: m.active < 0 ? -1 : Math.round(m.active / 1e6),
      lag: m.lag,
    };
  } catch {
    return undefined;
  }
}

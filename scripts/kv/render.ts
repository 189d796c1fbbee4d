/**
 * How `deno task kv` presents buckets and entries: `info` columns, the bucket
 * table, and the JSON and human forms of values and entries.
 *
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import type { StreamInfo } from "@nats-io/jetstream";
import { bucketOfStream } from "../../src/kv_layout.ts";
import { formatColumns, formatTable, isPrintable, toBase64 } from "../cli/output.ts";
import { formatBytes, formatDuration } from "../cli/units.ts";

/** The storage type as `nats kv` names it. */
export function storageName(s: string): string {
  return s === "memory" ? "Memory" : "File";
}

/** A bucket's `--json` form. */
export function bucketJson(si: StreamInfo) {
  const c = si.config;
  return {
    bucket: bucketOfStream(c.name) ?? c.name,
    stream: c.name,
    description: c.description ?? "",
    created: si.created,
    values: si.state.messages,
    bytes: si.state.bytes,
    history: c.max_msgs_per_subject,
    ttlMs: Math.round((c.max_age ?? 0) / 1e6),
    replicas: c.num_replicas,
    storage: c.storage,
    maxBytes: c.max_bytes,
    maxValueSize: c.max_msg_size ?? -1,
    lastUpdate: si.state.last_ts,
    firstRevision: si.state.first_seq,
    lastRevision: si.state.last_seq,
    cluster: si.cluster
      ? {
        name: si.cluster.name ?? "",
        leader: si.cluster.leader ?? "",
        replicas: (si.cluster.replicas ?? []).map((r) => ({
          name: r.name,
          current: r.current,
          offline: r.offline ?? false,
          lag: r.lag ?? 0,
        })),
      }
      : undefined,
  };
}

/** A bucket's `info` as aligned label/value lines. */
export function renderInfo(si: StreamInfo): string {
  const b = bucketJson(si);
  const rows: [string, string][] = [
    ["Bucket Name", b.bucket],
    ["History Kept", String(b.history)],
    ["Values Stored", String(b.values)],
    ["Backing Store Kind", "JetStream"],
  ];
  if (b.description) rows.push(["Description", b.description]);
  rows.push(
    ["Bucket Size", formatBytes(b.bytes)],
    ["Maximum Bucket Size", b.maxBytes < 0 ? "unlimited" : formatBytes(b.maxBytes)],
    ["Maximum Value Size", b.maxValueSize < 0 ? "unlimited" : formatBytes(b.maxValueSize)],
    ["Maximum Age", b.ttlMs <= 0 ? "unlimited" : formatDuration(b.ttlMs)],
    ["JetStream Stream", b.stream],
    ["Storage", storageName(b.storage)],
    ["Replicas", String(b.replicas)],
    ["Revisions", `${b.firstRevision}…${b.lastRevision}`],
  );
  const lines = [
    `Information for Key-Value Store Bucket ${b.bucket} created ${b.created}`,
    "",
    "Configuration:",
    "",
    formatColumns(rows),
  ];
  if (b.cluster) {
    const crows: [string, string][] = [["Name", b.cluster.name], ["Leader", b.cluster.leader]];
    for (const r of b.cluster.replicas) {
      const state = [r.name, r.current ? "current" : "outdated"];
      if (r.offline) state.push("OFFLINE");
      if (r.lag > 0) state.push(`${r.lag} operations behind`);
      crows.push(["Replica", state.join(", ")]);
    }
    lines.push("", "Cluster Information:", "", formatColumns(crows));
  }
  return lines.join("\n");
}

/** The `ls` table of buckets. */
export function renderBucketTable(infos: StreamInfo[]): string {
  const rows = infos.map((si) => {
    const b = bucketJson(si);
    return [
      b.bucket,
      String(b.values),
      formatBytes(b.bytes),
      String(b.history),
      b.ttlMs > 0 ? formatDuration(b.ttlMs) : "-",
      String(b.replicas),
      storageName(b.storage),
      b.description,
      b.lastUpdate && !b.lastUpdate.startsWith("0001") ? b.lastUpdate : "never",
    ];
  });
  return formatTable(
    [
      "Bucket",
      "Values",
      "Size",
      "History",
      "TTL",
      "Replicas",
      "Storage",
      "Description",
      "Last Update",
    ],
    rows,
  );
}

/** A value's `--json` form: text as is, other bytes as base64. */
export function valueJson(bytes: Uint8Array): { value: string } | { valueBase64: string } {
  return isPrintable(bytes)
    ? { value: new TextDecoder().decode(bytes) }
    : { valueBase64: toBase64(bytes) };
}

/** A value as shown to a person: text as is, other bytes as base64. */
export function valueText(bytes: Uint8Array): string {
  return isPrintable(bytes) ? new TextDecoder().decode(bytes) : toBase64(bytes);
}

/** An entry's `--json` form. */
export function entryJson(e: KvEntry) {
  return {
    bucket: e.bucket,
    key: e.key,
    revision: e.revision,
    operation: e.operation,
    created: e.created.toISOString(),
    delta: e.delta,
    length: e.value.length,
    ...valueJson(e.value),
  };
}

/** `text` cut to `max` characters, with an ellipsis. */
export function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, 15)}...${text.slice(-15)}` : text;
}

/**
 * The check a watcher makes when its consumer delivers a KV purge marker:
 * nats-server before 2.9.12 moves every consumer whose filter covers the
 * purged key (`$KV.<bucket>.>` does) up to the marker when it purges, so the
 * messages of other keys stored just before the marker and not yet delivered
 * are skipped, with no gap in the consumer's sequence (fixed by
 * nats-io/nats-server#3838; docs/nats-versions.md). A marker that jumps over
 * revisions is then not applied: the watcher replaces its consumer, which
 * delivers what the stream still holds after the last applied revision.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { serverVersion, versionAtLeast } from "./server_version.ts";

/**
 * The first nats-server whose purges leave the sequences of other keys' consumers alone.
 *
 * @example
 * ```ts
 * import { PURGE_SKIP_FIXED_VERSION } from "./purge_skip.ts";
 * import { versionAtLeast } from "./server_version.ts";
 * console.log(versionAtLeast("2.9.10", PURGE_SKIP_FIXED_VERSION)); // false: it has the defect
 * ```
 */
export const PURGE_SKIP_FIXED_VERSION = "2.9.12";

/**
 * A delivered purge marker and where the watcher stands.
 *
 * @example
 * ```ts
 * import type { PurgeDelivery } from "./purge_skip.ts";
 * // Marker 4 after revision 2, on a consumer created when the stream ended at 1.
 * const d: PurgeDelivery = { seq: 4, lastRev: 2, streamLastSeq: 1 };
 * ```
 */
export interface PurgeDelivery {
  /** The marker's stream sequence (the KV revision). */
  seq: number;
  /** The last revision the watcher applied. */
  lastRev: number;
  /** The stream's last sequence read before this consumer was created. */
  streamLastSeq: number;
}

/**
 * Whether a delivered PURGE marker may have made the consumer skip
 * revisions: a marker written after the consumer was created (a purge
 * before it cannot move it) that jumps over revisions, on a server with the
 * defect (or one of unknown version), as `server`'s INFO reports it. With a
 * key filter every jump over another key's message counts too: the consumer
 * is then replaced once per such purge, which costs a consumer create, never
 * a revision.
 *
 * @example
 * ```ts
 * import type { ServerInfo } from "@nats-io/nats-core";
 * import { purgeMaySkip } from "./purge_skip.ts";
 * const on = (version: string) => ({ info: { version } as ServerInfo });
 * const d = { seq: 4, lastRev: 2, streamLastSeq: 0 };
 * console.log(purgeMaySkip(d, on("2.9.10"))); // true: revision 3 may have been skipped
 * console.log(purgeMaySkip(d, on("2.15.2"))); // false
 * ```
 */
export function purgeMaySkip(d: PurgeDelivery, server: Pick<NatsConnection, "info">): boolean {
  return d.seq > d.lastRev + 1 && d.seq > d.streamLastSeq &&
    !versionAtLeast(serverVersion(server), PURGE_SKIP_FIXED_VERSION);
}
